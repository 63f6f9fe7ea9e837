// Package deploy holds the deployment files of the shop API; its tests check them against
// the Kubernetes API types and the server's own routes and port. It is a module of its own
// so that the service's go.mod does not carry k8s.io/api: run `go test ./...` here.
package deploy

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// manifests are the decoded objects of deploy/k8s, by kind.
type manifests struct {
	deployments []*appsv1.Deployment
	jobs        []*batchv1.Job
	services    []*corev1.Service
	configMaps  []*corev1.ConfigMap
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
}

// apiVersions are the kinds the manifests may hold and the API version each must use.
var apiVersions = map[string]string{
	"Deployment":              "apps/v1",
	"Job":                     "batch/v1",
	"Service":                 "v1",
	"ConfigMap":               "v1",
	"PodDisruptionBudget":     "policy/v1",
	"HorizontalPodAutoscaler": "autoscaling/v2",
}

// loadManifests decodes every document of every k8s/*.yaml strictly into its typed
// struct: an unknown kind, an unknown or misspelt field, or a wrong type fails the test.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("k8s", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in k8s/: %v", err)
	}
	var m manifests
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitYAML(raw) {
			where := fmt.Sprintf("%s, document %d", f, i+1)
			var head struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			if want, ok := apiVersions[head.Kind]; !ok {
				t.Fatalf("%s: unexpected kind %q", where, head.Kind)
			} else if head.APIVersion != want {
				t.Fatalf("%s: %s must be %s, not %q", where, head.Kind, want, head.APIVersion)
			}
			switch head.Kind {
			case "Deployment":
				m.deployments = append(m.deployments, decodeStrict[appsv1.Deployment](t, where, doc))
			case "Job":
				m.jobs = append(m.jobs, decodeStrict[batchv1.Job](t, where, doc))
			case "Service":
				m.services = append(m.services, decodeStrict[corev1.Service](t, where, doc))
			case "ConfigMap":
				m.configMaps = append(m.configMaps, decodeStrict[corev1.ConfigMap](t, where, doc))
			case "PodDisruptionBudget":
				m.pdbs = append(m.pdbs, decodeStrict[policyv1.PodDisruptionBudget](t, where, doc))
			case "HorizontalPodAutoscaler":
				m.hpas = append(m.hpas, decodeStrict[autoscalingv2.HorizontalPodAutoscaler](t, where, doc))
			}
		}
	}
	for kind, n := range map[string]int{"Deployment": len(m.deployments), "Job": len(m.jobs), "Service": len(m.services),
		"ConfigMap": len(m.configMaps), "PodDisruptionBudget": len(m.pdbs), "HorizontalPodAutoscaler": len(m.hpas)} {
		if n != 1 {
			t.Fatalf("want exactly one %s in k8s/, found %d", kind, n)
		}
	}
	return m
}

func decodeStrict[T any](t *testing.T, where string, doc []byte) *T {
	t.Helper()
	v := new(T)
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return v
}

// splitYAML returns the non-empty documents of a multi-document YAML stream.
func splitYAML(raw []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(d, "")) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// serverRoutes returns the paths the server mounts for GET, read from its source
// (server.go and the api package, wherever the mounting lives).
func serverRoutes(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(filepath.Join("..", "api"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "server.go"))
	var routes []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`"GET (/[A-Za-z0-9_/{}$.-]*)"`).FindAllSubmatch(src, -1) {
			routes = append(routes, string(m[1]))
		}
	}
	return routes
}

// serverDefaultPort returns the port the server listens on without PORT, from server.go.
func serverDefaultPort(t *testing.T) int {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "server.go"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`getenv\("PORT"\),\s*"(\d+)"`).FindSubmatch(src)
	if m == nil {
		return 8080 // the contract's default, should server.go read PORT elsewhere
	}
	p, _ := strconv.Atoi(string(m[1]))
	return p
}

// secretName says whether an environment variable holds a secret (or, like DATABASE_URL,
// may carry a password): its value must come from a Secret.
func secretName(name string) bool {
	switch name {
	case "DATABASE_URL", "REDIS_URL", "JWT_SECRET", "ADMIN_PASSWORD":
		return true
	}
	return regexp.MustCompile(`PASSWORD|SECRET|TOKEN|_KEY$|CREDENTIAL`).MatchString(name) ||
		name == "OTEL_EXPORTER_OTLP_HEADERS"
}

func TestManifests(t *testing.T) {
	m := loadManifests(t)
	dep, job, svc, cm, pdb, hpa := m.deployments[0], m.jobs[0], m.services[0], m.configMaps[0], m.pdbs[0], m.hpas[0]

	routes := serverRoutes(t)
	for _, r := range []string{"/healthz", "/readyz"} {
		if !slices.Contains(routes, r) {
			t.Fatalf("the server mounts no GET %s (found %v in ../server.go and ../api)", r, routes)
		}
	}

	// The port: the ConfigMap's PORT (or the server's default) is the container's port.
	port := serverDefaultPort(t)
	if p, ok := cm.Data["PORT"]; ok {
		if port, _ = strconv.Atoi(p); port == 0 {
			t.Fatalf("ConfigMap PORT %q is not a port", p)
		}
	}
	pod := dep.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container in the Deployment, got %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if len(c.Ports) == 0 || c.Ports[0].ContainerPort != int32(port) || c.Ports[0].Name != "http" {
		t.Fatalf("want container port %d named http first, got %+v", port, c.Ports)
	}
	// ADMIN_ADDR (":9090") moves /metrics and /readyz to a port of their own: the container
	// declares it as "admin", and the readiness probe and Prometheus use it.
	opsPort := c.Ports[0]
	if addr, ok := cm.Data["ADMIN_ADDR"]; ok {
		_, p, err := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		if err != nil || len(c.Ports) != 2 || c.Ports[1].Name != "admin" || c.Ports[1].ContainerPort != int32(n) {
			t.Fatalf("ADMIN_ADDR %q: want a second container port %d named admin, got %+v", addr, n, c.Ports)
		}
		opsPort = c.Ports[1]
		if got := pod.Annotations["prometheus.io/port"]; got != p {
			t.Errorf("prometheus.io/port is %q, want the admin port %s", got, p)
		}
	} else if len(c.Ports) != 1 {
		t.Fatalf("without ADMIN_ADDR want one container port, got %+v", c.Ports)
	}
	portMatches := func(cp corev1.ContainerPort, what string, p intstr.IntOrString) {
		t.Helper()
		if !(p.Type == intstr.Int && p.IntVal == cp.ContainerPort) && !(p.Type == intstr.String && p.StrVal == cp.Name) {
			t.Errorf("%s targets port %s, not the container's %d (%s)", what, p.String(), cp.ContainerPort, cp.Name)
		}
	}
	samePort := func(what string, p intstr.IntOrString) { t.Helper(); portMatches(c.Ports[0], what, p) }

	// Probes on the server's routes and ports: liveness on the public one, readiness where
	// /readyz is served.
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
		port  corev1.ContainerPort
	}{{"readinessProbe", c.ReadinessProbe, "/readyz", opsPort}, {"livenessProbe", c.LivenessProbe, "/healthz", c.Ports[0]}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe", p.what)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("%s: path %q, want %q", p.what, p.probe.HTTPGet.Path, p.path)
		}
		portMatches(p.port, p.what, p.probe.HTTPGet.Port)
	}

	// Graceful shutdown: the kubelet's sleep (no shell in the image), then SIGTERM and the
	// server's drain of up to 20 s, all within the grace period.
	const serverDrain = 20
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Error("want a preStop sleep action (the image has no shell for exec)")
	} else if c.Lifecycle.PreStop.Exec != nil {
		t.Error("preStop exec cannot run: the image has no shell")
	} else if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g < c.Lifecycle.PreStop.Sleep.Seconds+serverDrain+5 {
		t.Errorf("terminationGracePeriodSeconds (default 30 when unset) is shorter than the preStop sleep (%d s) + the server's drain (%d s) + 5 s",
			c.Lifecycle.PreStop.Sleep.Seconds, serverDrain)
	}

	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("the container requests no %s", r)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Error("the container has no memory limit")
	}

	// Labels and selectors: the Deployment selects its pods, the Service, PDB and HPA
	// reach them, and the migration Job's pods get no traffic.
	if dep.Spec.Selector == nil || !subset(dep.Spec.Selector.MatchLabels, pod.Labels) || len(dep.Spec.Selector.MatchExpressions) > 0 {
		t.Errorf("the Deployment's selector %v does not select its pods %v", dep.Spec.Selector, pod.Labels)
	}
	if len(svc.Spec.Selector) == 0 || !subset(svc.Spec.Selector, pod.Labels) {
		t.Errorf("the Service's selector %v does not select the pods %v", svc.Spec.Selector, pod.Labels)
	}
	if subset(svc.Spec.Selector, job.Spec.Template.Labels) {
		t.Errorf("the Service's selector %v also selects the migration Job's pods", svc.Spec.Selector)
	}
	if len(svc.Spec.Ports) == 0 {
		t.Error("the Service has no ports")
	}
	for _, p := range svc.Spec.Ports {
		samePort("Service port "+p.Name, p.TargetPort)
	}
	if pdb.Spec.Selector == nil || !subset(pdb.Spec.Selector.MatchLabels, pod.Labels) || len(pdb.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("the PodDisruptionBudget's selector %v does not select the pods %v", pdb.Spec.Selector, pod.Labels)
	}
	if subset(pdb.Spec.Selector.MatchLabels, job.Spec.Template.Labels) {
		t.Error("the PodDisruptionBudget also counts the migration Job's pods")
	}
	if ref := hpa.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != dep.Name {
		t.Errorf("the HPA scales %+v, not Deployment %s", ref, dep.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas {
		t.Errorf("the HPA's replicas: min %v max %d", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	if dep.Spec.Replicas != nil {
		t.Error("the Deployment sets replicas, which every apply would reset under the HPA")
	}

	// The migration Job: the same image, the migrate command, no restarts in place.
	jc := job.Spec.Template.Spec.Containers
	if len(jc) != 1 || !slices.Equal(append(jc[0].Command, jc[0].Args...), []string{"migrate"}) {
		t.Errorf("the Job must run the image's `migrate`, got %+v", jc)
	} else if jc[0].Image != c.Image {
		t.Errorf("the Job runs %s, the Deployment %s", jc[0].Image, c.Image)
	}
	if job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("the Job's restartPolicy is %q, want Never", job.Spec.Template.Spec.RestartPolicy)
	}

	// Secrets only by reference, and the same hardening on every container.
	for k := range cm.Data {
		if secretName(k) {
			t.Errorf("ConfigMap holds %s: it belongs in a Secret", k)
		}
	}
	for _, w := range []struct {
		what string
		spec corev1.PodSpec
	}{{"Deployment", pod.Spec}, {"Job", job.Spec.Template.Spec}} {
		for _, c := range w.spec.Containers {
			where := w.what + " container " + c.Name
			for _, e := range c.Env {
				if secretName(e.Name) && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					t.Errorf("%s: %s must come from a secretKeyRef, without a value", where, e.Name)
				}
			}
			for _, from := range c.EnvFrom {
				if from.ConfigMapRef == nil || from.ConfigMapRef.Name != cm.Name {
					t.Errorf("%s: envFrom %+v is not the ConfigMap %s", where, from, cm.Name)
				}
			}
			requireHardened(t, where, w.spec.SecurityContext, c.SecurityContext)
		}
	}
}

// requireHardened checks a container runs as non-root, read-only, with no privilege
// escalation and no capabilities.
func requireHardened(t *testing.T, where string, pod *corev1.PodSecurityContext, c *corev1.SecurityContext) {
	t.Helper()
	if c == nil {
		t.Errorf("%s: no securityContext", where)
		return
	}
	nonRoot := c.RunAsNonRoot != nil && *c.RunAsNonRoot || c.RunAsNonRoot == nil && pod != nil && pod.RunAsNonRoot != nil && *pod.RunAsNonRoot
	if !nonRoot {
		t.Errorf("%s: runAsNonRoot is not true", where)
	}
	if c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem is not true", where)
	}
	if c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", where)
	}
	if c.Capabilities == nil || !slices.Contains(c.Capabilities.Drop, "ALL") || len(c.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities must drop ALL and add none, got %+v", where, c.Capabilities)
	}
	if c.Privileged != nil && *c.Privileged {
		t.Errorf("%s: privileged", where)
	}
}

// subset says whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// composeFile is the part of compose.yaml the test checks.
type composeFile struct {
	Services map[string]struct {
		Image       string
		Command     []string
		Environment map[string]string
		Volumes     []string
		Deploy      struct{ Replicas int }
		DependsOn   map[string]struct{ Condition string } `json:"depends_on"`
	}
}

func TestCompose(t *testing.T) {
	raw, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, s := range []string{"postgres", "redis", "migrate", "api", "nginx"} {
		if _, ok := c.Services[s]; !ok {
			t.Fatalf("compose.yaml has no service %q", s)
		}
	}
	api, migrate, nginx := c.Services["api"], c.Services["migrate"], c.Services["nginx"]
	if api.Deploy.Replicas != 3 {
		t.Errorf("api runs %d replicas, want 3", api.Deploy.Replicas)
	}
	if !slices.Equal(migrate.Command, []string{"migrate"}) || migrate.Image != api.Image {
		t.Errorf("migrate must run `migrate` in the api's image: %+v", migrate)
	}
	if api.DependsOn["migrate"].Condition != "service_completed_successfully" {
		t.Errorf("api must wait for migrate to complete, depends_on %+v", api.DependsOn)
	}
	for _, s := range []string{"api", "migrate"} {
		for k, v := range c.Services[s].Environment {
			if secretName(k) && strings.Contains(v, "://") && !strings.Contains(v, "${") && regexp.MustCompile(`://[^/@]*:[^/@]+@`).MatchString(v) {
				t.Errorf("%s: %s has a password in the file", s, k)
			}
			if secretName(k) && k != "DATABASE_URL" && k != "REDIS_URL" && !strings.HasPrefix(v, "${") {
				t.Errorf("%s: %s must come from the environment (${...}), not the file", s, k)
			}
		}
	}
	if !slices.ContainsFunc(nginx.Volumes, func(v string) bool { return strings.HasPrefix(v, "./nginx.conf:") }) {
		t.Errorf("nginx does not mount ./nginx.conf: %v", nginx.Volumes)
	}
	port := api.Environment["PORT"]
	if port == "" {
		port = strconv.Itoa(serverDefaultPort(t))
	}

	conf, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf = regexp.MustCompile(`(?m)#.*$`).ReplaceAll(conf, nil)
	upstreams := map[string][]string{}
	for _, m := range regexp.MustCompile(`upstream\s+(\S+)\s*\{([^}]*)\}`).FindAllSubmatch(conf, -1) {
		for _, s := range regexp.MustCompile(`(?m)^\s*server\s+(\S+)`).FindAllSubmatch(m[2], -1) {
			upstreams[string(m[1])] = append(upstreams[string(m[1])], string(s[1]))
		}
		if !regexp.MustCompile(`max_fails=\d+`).Match(m[2]) || !regexp.MustCompile(`fail_timeout=\d+`).Match(m[2]) {
			t.Errorf("upstream %s: want passive health (max_fails, fail_timeout) on its servers", m[1])
		}
		if !regexp.MustCompile(`(?m)^\s*keepalive\s+\d+;`).Match(m[2]) {
			t.Errorf("upstream %s: no keepalive", m[1])
		}
	}
	if len(upstreams) == 0 {
		t.Fatal("nginx.conf has no upstream")
	}
	for name, servers := range upstreams {
		for _, s := range servers {
			host, p, _ := strings.Cut(s, ":")
			if host != "api" || p != port {
				t.Errorf("upstream %s: server %s is not the api service's replicas on port %s", name, s, port)
			}
		}
	}
	for _, m := range regexp.MustCompile(`proxy_pass\s+http://([^/;\s]+)`).FindAllSubmatch(conf, -1) {
		if _, ok := upstreams[string(m[1])]; !ok {
			t.Errorf("proxy_pass to %s, which is no upstream", m[1])
		}
	}

	// The recommendations nginx.conf exists to carry (http_503 is what a draining replica
	// answers an upgrade with; a POST that reached a replica is never resent anyway).
	for what, re := range map[string]string{
		"HTTP/1.1 to the upstream":      `proxy_http_version\s+1\.1;`,
		"the Upgrade header":            `proxy_set_header\s+Upgrade\s+\$http_upgrade;`,
		"the Connection header":         `proxy_set_header\s+Connection\s+\$connection_upgrade;`,
		"X-Forwarded-For appended":      `proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;`,
		"unbuffered SSE":                `proxy_buffering\s+off;`,
		"retries only before a request": `proxy_next_upstream\s+error\s+timeout(\s+http_503)?;`,
	} {
		if !regexp.MustCompile(re).Match(conf) {
			t.Errorf("nginx.conf lacks %s (%s)", what, re)
		}
	}
	if bytes.Contains(conf, []byte("non_idempotent")) {
		t.Error("nginx.conf retries non-idempotent requests: a POST mutation could run twice")
	}
	for _, m := range regexp.MustCompile(`proxy_read_timeout\s+(\d+)(s|m|h)?;`).FindAllSubmatch(conf, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		switch string(m[2]) {
		case "m":
			n *= 60
		case "h":
			n *= 3600
		}
		if n < 60 {
			t.Errorf("proxy_read_timeout %ss is too short for 20 s heartbeats", m[1])
		}
	}
}
