package diskstore

const childEnv = "DISKSTORE_CRASH_CHILD"

func runChild() int { return 0 }
