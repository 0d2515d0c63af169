package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/outpost-cdn/outpost/config"
)

// object is what every Kubernetes API object has.
type object interface {
	GetName() string
	GetNamespace() string
	GetLabels() map[string]string
	GetAnnotations() map[string]string
}

// kinds are the API types the manifests may use, by apiVersion and kind.
var kinds = map[string]func() object{
	"v1/Namespace":                  func() object { return new(corev1.Namespace) },
	"v1/ConfigMap":                  func() object { return new(corev1.ConfigMap) },
	"v1/Service":                    func() object { return new(corev1.Service) },
	"apps/v1/DaemonSet":             func() object { return new(appsv1.DaemonSet) },
	"apps/v1/Deployment":            func() object { return new(appsv1.Deployment) },
	"policy/v1/PodDisruptionBudget": func() object { return new(policyv1.PodDisruptionBudget) },
}

// decodeStrict decodes one YAML document into the API type its apiVersion
// and kind name. Unknown and duplicate fields are errors, as are values of
// the wrong type: the YAML is converted to JSON and decoded with unknown
// fields disallowed.
func decodeStrict(doc []byte) (object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	newObj, ok := kinds[gvk]
	if !ok {
		return nil, fmt.Errorf("unexpected apiVersion/kind %q (the test knows %v)", gvk, slices.Sorted(mapsKeys(kinds)))
	}
	obj := newObj()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, err
	}
	return obj, nil
}

// manifests holds every object of kubernetes/*.yaml.
type manifests struct {
	objects []object
	where   map[object]string // file and document number
}

// loadManifests reads every document of every kubernetes/*.yaml file.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in kubernetes/: %v", err)
	}
	m := &manifests{where: make(map[object]string)}
	for _, f := range files {
		r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(readFile(t, f))))
		for i := 1; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			obj, err := decodeStrict(doc)
			if err != nil {
				t.Fatalf("%s (document %d): %v", f, i, err)
			}
			m.objects = append(m.objects, obj)
			m.where[obj] = fmt.Sprintf("%s#%d", f, i)
		}
	}
	return m
}

// stripComments drops whole-line YAML comments, to spot empty documents.
func stripComments(doc []byte) []byte {
	var out []byte
	for line := range bytes.Lines(doc) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line...)
		}
	}
	return out
}

// one returns the only object of type T, failing t unless there is
// exactly one.
func one[T object](t *testing.T, m *manifests) T {
	t.Helper()
	var found []T
	for _, o := range m.objects {
		if v, ok := o.(T); ok {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want one %T in kubernetes/, found %d", zero, len(found))
	}
	return found[0]
}

// TestKubernetesStrictDecoding checks that the strict decoder rejects what
// it must, so that the other tests' passing means something.
func TestKubernetesStrictDecoding(t *testing.T) {
	tests := []struct {
		name, doc string
		ok        bool
	}{
		{"valid", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n", true},
		{"misspelt field", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostNetwrok: true\n", false},
		{"duplicate field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nmetadata: {name: y}\n", false},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two}\n", false},
		{"bad quantity", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: fifty-three}]}\n", false},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeStrict([]byte(tt.doc))
			if (err == nil) != tt.ok {
				t.Errorf("decodeStrict: err = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

// TestKubernetesManifests checks what holds for every object: strict
// decoding (in loadManifests), valid names and labels, one namespace, the
// recommended labels.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	ns := one[*corev1.Namespace](t, m)
	for _, o := range m.objects {
		t.Run(m.where[o], func(t *testing.T) {
			errs := field.ErrorList{}
			for _, msg := range validation.IsDNS1123Subdomain(o.GetName()) {
				errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), o.GetName(), msg))
			}
			errs = append(errs, metav1validation.ValidateLabels(o.GetLabels(), field.NewPath("metadata", "labels"))...)
			errs = append(errs, apivalidation.ValidateAnnotations(o.GetAnnotations(), field.NewPath("metadata", "annotations"))...)
			for _, e := range errs {
				t.Error(e)
			}
			if o.GetLabels()["app.kubernetes.io/part-of"] != "outpost" {
				t.Errorf("label app.kubernetes.io/part-of=%q, want outpost", o.GetLabels()["app.kubernetes.io/part-of"])
			}
			if _, isNS := o.(*corev1.Namespace); !isNS && o.GetNamespace() != ns.Name {
				t.Errorf("namespace %q, want %q (the Namespace manifest)", o.GetNamespace(), ns.Name)
			}
		})
	}
}

// cdnFromConfigMap writes the ConfigMap's keys into a temporary directory
// and parses the CDN file among them, the key named like configPath.
func cdnFromConfigMap(t *testing.T, cm *corev1.ConfigMap) *config.Config {
	t.Helper()
	key := path.Base(configPath)
	if _, ok := cm.Data[key]; !ok {
		t.Fatalf("ConfigMap %s has no key %q (the file name of --config %s)", cm.Name, key, configPath)
	}
	dir := writeFiles(t, cm.Data)
	return parseCDN(t, filepath.Join(dir, key))
}

// checkPodTemplate checks what both pod templates must satisfy. admin is the
// admin listener's port from the CDN file; cm the CDN ConfigMap.
func checkPodTemplate(t *testing.T, where string, sel *metav1.LabelSelector, tpl corev1.PodTemplateSpec, admin string, cm *corev1.ConfigMap) {
	t.Helper()
	// The selector selects the template.
	for _, e := range metav1validation.ValidateLabelSelector(sel, metav1validation.LabelSelectorValidationOptions{}, field.NewPath("spec", "selector")) {
		t.Errorf("%s: %v", where, e)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() || !s.Matches(labels.Set(tpl.Labels)) {
		t.Errorf("%s: selector %v does not select the template's labels %v", where, sel, tpl.Labels)
	}
	spec := tpl.Spec

	// Prometheus annotations point at the admin listener.
	a := tpl.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != admin || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("%s: prometheus.io annotations %v, want scrape true, port %s, path /metrics", where, a, admin)
	}

	// Pod security.
	psc := spec.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
		t.Errorf("%s: want securityContext.runAsNonRoot: true", where)
	case psc.RunAsUser == nil || *psc.RunAsUser == 0:
		t.Errorf("%s: want a non-zero securityContext.runAsUser", where)
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("%s: want the RuntimeDefault seccomp profile", where)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: want automountServiceAccountToken: false (Outpost never calls the API)", where)
	}

	// The CDN file: a read-only ConfigMap volume at configPath's directory.
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: want one container, got %d", where, len(spec.Containers))
	}
	c := spec.Containers[0]
	for _, msg := range validation.IsDNS1123Label(c.Name) {
		t.Errorf("%s: container name %q: %s", where, c.Name, msg)
	}
	mounted := false
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		if !ok {
			t.Errorf("%s: volumeMount %q names no volume", where, vm.Name)
			continue
		}
		if !vm.ReadOnly {
			t.Errorf("%s: volumeMount %q is not readOnly", where, vm.Name)
		}
		if vm.MountPath == path.Dir(configPath) && vm.SubPath == "" && v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("%s: ConfigMap %s is not mounted (whole, read-only) at %s", where, cm.Name, path.Dir(configPath))
	}

	// Container security.
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("%s: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities.drop [ALL]", where)
	} else {
		low := slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort < 1024 })
		for _, add := range sc.Capabilities.Add {
			if add != "NET_BIND_SERVICE" || !low {
				t.Errorf("%s: capability %s added; only NET_BIND_SERVICE, and only to bind a port below 1024", where, add)
			}
		}
	}

	// Ports: valid names; the probes use the admin port.
	ports := map[string]corev1.ContainerPort{}
	for _, p := range c.Ports {
		for _, msg := range validation.IsValidPortName(p.Name) {
			t.Errorf("%s: port name %q: %s", where, p.Name, msg)
		}
		ports[p.Name] = p
	}
	for name, pr := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("%s: want an httpGet %s", where, name)
			continue
		}
		if pr.HTTPGet.Path != "/healthz" || portNumber(pr.HTTPGet.Port, ports) != admin {
			t.Errorf("%s: %s probes %s on port %s, want /healthz on the admin port %s", where, name, pr.HTTPGet.Path, pr.HTTPGet.Port.String(), admin)
		}
	}

	// Resources: requests and limits for CPU and memory, requests ≤ limits.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq || !okLim || req.Cmp(lim) > 0 {
			t.Errorf("%s: resources for %s: request %v, limit %v; want both, request ≤ limit", where, r, req.String(), lim.String())
		}
	}
}

// portNumber resolves a probe or Service port (a number or a container
// port's name) to a number, as a string.
func portNumber(p intstr.IntOrString, ports map[string]corev1.ContainerPort) string {
	if p.Type == intstr.Int {
		return strconv.Itoa(p.IntValue())
	}
	if cp, ok := ports[p.StrVal]; ok {
		return strconv.Itoa(int(cp.ContainerPort))
	}
	return "?" + p.StrVal
}

// containerArgs returns the container's command line after the image's
// entrypoint (/outpost), with $(VAR) references to env replaced by vars.
func containerArgs(t *testing.T, where string, c corev1.Container, vars map[string]string) []string {
	t.Helper()
	if len(c.Command) > 0 {
		t.Errorf("%s: command %v overrides the image's entrypoint /outpost; use args", where, c.Command)
	}
	var out []string
	for _, a := range c.Args {
		for k, v := range vars {
			a = strings.ReplaceAll(a, "$("+k+")", v)
		}
		if strings.Contains(a, "$(") {
			t.Errorf("%s: argument %q refers to an unknown variable", where, a)
		}
		out = append(out, a)
	}
	return out
}

// TestKubernetesConfigMap checks the CDN file carried by the ConfigMap with
// the real parser.
func TestKubernetesConfigMap(t *testing.T) {
	t.Setenv(config.TokenEnv, "") // what the file itself says
	m := loadManifests(t)
	c := cdnFromConfigMap(t, one[*corev1.ConfigMap](t, m))
	if c.Purge.Token != "" || c.Purge.TokenFile != "" {
		t.Errorf("the ConfigMap's CDN file gives a purge token (%v); the token belongs in the Secret the PoPs get as $%s", c.Purge, config.TokenEnv)
	}
	if !c.DNS.Enabled() {
		t.Fatal("the ConfigMap's CDN file has no dns section")
	}
	if c.DNS.Networks != "" {
		if _, ok := one[*corev1.ConfigMap](t, m).Data[filepath.Base(c.DNS.Networks)]; !ok || filepath.Dir(c.DNS.Networks) != filepath.Dir(c.Path) {
			t.Errorf("dns.networks %s is not a key of the ConfigMap (it must sit beside cdn.yaml)", c.DNS.Networks)
		}
	}
	for _, p := range c.POPs {
		for _, msg := range validation.IsDNS1123Subdomain(p.Name) {
			t.Errorf("PoP %s: not a valid node name (the DaemonSet runs --pop <node name>): %s", p.Name, msg)
		}
	}
}

// TestKubernetesPoPs checks the PoP DaemonSet.
func TestKubernetesPoPs(t *testing.T) {
	m := loadManifests(t)
	cm := one[*corev1.ConfigMap](t, m)
	cdn := cdnFromConfigMap(t, cm)
	ds := one[*appsv1.DaemonSet](t, m)
	spec := ds.Spec.Template.Spec
	where := m.where[ds]

	// Every PoP of the file runs this one template, so they share ports.
	admin := port(t, cdn.POPs[0].Admin)
	listen := port(t, cdn.POPs[0].Listen)
	for _, p := range cdn.POPs {
		if port(t, p.Admin) != admin || port(t, p.Listen) != listen {
			t.Errorf("PoP %s uses ports %s and %s; every PoP of the DaemonSet must use %s and %s", p.Name, port(t, p.Listen), port(t, p.Admin), listen, admin)
		}
	}
	checkPodTemplate(t, where, ds.Spec.Selector, ds.Spec.Template, admin, cm)
	c := spec.Containers[0]

	tests := []struct {
		name string
		ok   bool
		want string
	}{
		{"hostNetwork", spec.HostNetwork, "hostNetwork: true (PoPs serve on the node's addresses)"},
		{"dnsPolicy", spec.DNSPolicy == corev1.DNSClusterFirstWithHostNet, "dnsPolicy: ClusterFirstWithHostNet"},
		{"nodeSelector", spec.NodeSelector["outpost.dev/edge"] == "true", `nodeSelector outpost.dev/edge: "true"`},
		{"toleration", slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool { return tl.Key == "outpost.dev/edge" }),
			"a toleration for the outpost.dev/edge taint"},
		{"grace period", spec.TerminationGracePeriodSeconds != nil &&
			time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second > maxDrain(cdn)+popGrace,
			fmt.Sprintf("terminationGracePeriodSeconds above drain + grace = %s", maxDrain(cdn)+popGrace)},
		{"liveness tolerates draining", c.LivenessProbe != nil &&
			time.Duration(c.LivenessProbe.PeriodSeconds*c.LivenessProbe.FailureThreshold)*time.Second > maxDrain(cdn),
			"livenessProbe periodSeconds × failureThreshold above the drain (/healthz is 503 while draining)"},
		{"readiness is quick", c.ReadinessProbe != nil && c.ReadinessProbe.PeriodSeconds <= 10, "readinessProbe periodSeconds ≤ 10"},
		{"one PoP at a time", ds.Spec.UpdateStrategy.RollingUpdate != nil && ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable != nil &&
			ds.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable.IntValue() == 1,
			"rollingUpdate.maxUnavailable: 1"},
		{"ports", containerPort(c, listen, corev1.ProtocolTCP) && containerPort(c, admin, corev1.ProtocolTCP),
			"containerPorts " + listen + " and " + admin + " (the PoPs' listen and admin ports)"},
		{"purge token from a Secret", tokenFromSecret(c),
			"env " + config.TokenEnv + " from a secretKeyRef (a required one: no silent purge-less PoPs)"},
	}
	// Memory: the limit is above the cache, GOMEMLIMIT between them.
	var maxCache int64
	for _, p := range cdn.POPs {
		maxCache = max(maxCache, p.CacheSize)
	}
	limit := c.Resources.Limits[corev1.ResourceMemory]
	goMemLimit := int64(-1)
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			goMemLimit = parseGoMemLimit(e.Value)
		}
	}
	tests = append(tests, struct {
		name string
		ok   bool
		want string
	}{"memory", limit.Value() > maxCache && goMemLimit > maxCache && goMemLimit < limit.Value(),
		fmt.Sprintf("cache_size %d < GOMEMLIMIT %d < limits.memory %d", maxCache, goMemLimit, limit.Value())})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Errorf("%s: want %s", where, tt.want)
			}
		})
	}

	// The command line, for each PoP (each is a node name).
	hasNodeName := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	})
	if !hasNodeName {
		t.Errorf("%s: want env NODE_NAME from fieldRef spec.nodeName", where)
	}
	files := map[string]string{configPath: cdn.Path}
	for _, p := range cdn.POPs {
		args := containerArgs(t, where, c, map[string]string{"NODE_NAME": p.Name})
		v := checkCommand(t, commandCheck{where: where + " as node " + p.Name, args: args, files: files})
		if args[0] != "pop" || v["pop"] != p.Name {
			t.Errorf("%s: runs %v, want pop --pop $(NODE_NAME)", where, args)
		}
		if v["watch-config"] == "" {
			t.Errorf("%s: runs %v, want --watch-config: no one sends SIGHUP when the kubelet swaps the ConfigMap", where, args)
		}
	}
}

// tokenFromSecret reports whether c gets the purge token from a Secret
// that must exist.
func tokenFromSecret(c corev1.Container) bool {
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == config.TokenEnv && e.Value == "" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
			e.ValueFrom.SecretKeyRef.Name != "" && e.ValueFrom.SecretKeyRef.Key != "" &&
			(e.ValueFrom.SecretKeyRef.Optional == nil || !*e.ValueFrom.SecretKeyRef.Optional)
	})
}

// containerPort reports whether c declares port with protocol.
func containerPort(c corev1.Container, port string, proto corev1.Protocol) bool {
	return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool {
		return strconv.Itoa(int(p.ContainerPort)) == port && p.Protocol == proto
	})
}

// parseGoMemLimit reads a GOMEMLIMIT value (bytes with an optional B, KiB,
// MiB, GiB or TiB suffix); -1 if it is not one.
func parseGoMemLimit(s string) int64 {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -1
	}
	return n * mult
}

// TestKubernetesDNS checks the DNS Deployment, its Service and its
// PodDisruptionBudget.
func TestKubernetesDNS(t *testing.T) {
	m := loadManifests(t)
	cm := one[*corev1.ConfigMap](t, m)
	cdn := cdnFromConfigMap(t, cm)
	dep := one[*appsv1.Deployment](t, m)
	svc := one[*corev1.Service](t, m)
	pdb := one[*policyv1.PodDisruptionBudget](t, m)
	where := m.where[dep]
	admin := port(t, cdn.DNS.Admin)
	checkPodTemplate(t, where, dep.Spec.Selector, dep.Spec.Template, admin, cm)
	spec := dep.Spec.Template.Spec
	c := spec.Containers[0]
	ports := map[string]corev1.ContainerPort{}
	for _, p := range c.Ports {
		ports[p.Name] = p
	}

	dnsPort := port(t, cdn.DNS.Listen[0])
	stopNeed := dnsGrace
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		stopNeed += time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	replicas := int32(1)
	if dep.Spec.Replicas != nil {
		replicas = *dep.Spec.Replicas
	}
	svcSel := labels.SelectorFromSet(svc.Spec.Selector)
	pdbSel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	servicePort := func(proto corev1.Protocol) bool {
		return slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
			cp := portNumber(p.TargetPort, ports)
			return p.Port == 53 && p.Protocol == proto && cp == dnsPort && containerPort(c, cp, proto)
		})
	}

	tests := []struct {
		name string
		ok   bool
		want string
	}{
		{"replicas", replicas >= 2, "2 or more replicas"},
		{"own network", !spec.HostNetwork, "no hostNetwork (the Service publishes port 53)"},
		{"every listen port", !slices.ContainsFunc(cdn.DNS.Listen, func(l string) bool { return port(t, l) != dnsPort }), "one port for all of dns.listen"},
		{"container ports", containerPort(c, dnsPort, corev1.ProtocolUDP) && containerPort(c, dnsPort, corev1.ProtocolTCP),
			"containerPorts " + dnsPort + " UDP and TCP (dns.listen)"},
		{"service UDP 53", servicePort(corev1.ProtocolUDP), "Service port 53/UDP → the container's DNS port"},
		{"service TCP 53", servicePort(corev1.ProtocolTCP), "Service port 53/TCP → the container's DNS port"},
		{"service selects the pods", !svcSel.Empty() && svcSel.Matches(labels.Set(dep.Spec.Template.Labels)), "the Service's selector matches the pod labels"},
		{"client address kept", svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			"externalTrafficPolicy: Local (geo DNS needs the resolver's address)"},
		{"pdb selects the pods", !pdbSel.Empty() && pdbSel.Matches(labels.Set(dep.Spec.Template.Labels)), "the PodDisruptionBudget's selector matches the pod labels"},
		{"pdb leaves one", pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.IntValue() >= 1 && pdb.Spec.MinAvailable.IntValue() < int(replicas),
			"minAvailable between 1 and replicas − 1"},
		{"grace period", spec.TerminationGracePeriodSeconds != nil && time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second > stopNeed,
			fmt.Sprintf("terminationGracePeriodSeconds above preStop + grace = %s", stopNeed)},
		{"spread over nodes", slices.ContainsFunc(spec.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
			return c.TopologyKey == "kubernetes.io/hostname"
		}), "a topology spread over kubernetes.io/hostname"},
		{"no purge token", !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == config.TokenEnv }),
			"no " + config.TokenEnv + " (only the PoPs need the purge token)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.ok {
				t.Errorf("%s: want %s", where, tt.want)
			}
		})
	}

	args := containerArgs(t, where, c, nil)
	v := checkCommand(t, commandCheck{where: where, args: args, files: map[string]string{configPath: cdn.Path}})
	if args[0] != "dns" {
		t.Errorf("%s: runs %v, want dns", where, args)
	}
	if v["watch-config"] == "" {
		t.Errorf("%s: runs %v, want --watch-config: no one sends SIGHUP when the kubelet swaps the ConfigMap", where, args)
	}
	if ds := one[*appsv1.DaemonSet](t, m); ds.Spec.Template.Spec.Containers[0].Image != c.Image {
		t.Errorf("the PoPs run %s and the DNS servers %s: want one image", ds.Spec.Template.Spec.Containers[0].Image, c.Image)
	}
}
