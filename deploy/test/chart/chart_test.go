// Package chart renders the consentgate Helm chart with Helm's Go SDK,
// decodes every manifest strictly into the Kubernetes API types, lints
// the chart and checks the invariants operators rely on. It is its own Go
// module so that the gateway's go.mod stays free of Helm and client-go.
//
//	go test ./chart           # from deploy/test
//	go test ./chart -update   # rewrite deploy/kubernetes/consentgate.yaml
package chart

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
)

var update = flag.Bool("update", false, "rewrite the plain manifests under deploy/kubernetes")

const (
	chartDir     = "../../helm/consentgate"
	alertsFile   = "../../prometheus/alerts.yaml"
	plainOut     = "../../kubernetes/consentgate.yaml"
	releaseName  = "consentgate"
	releaseNS    = "web"
	testSecret   = "a-shared-test-secret-of-32-bytes"
	kubeVersion  = "v1.31.0"
	envSecret    = "CONSENTGATE_COOKIELESS_SECRET"
	envSpool     = "CONSENTGATE_DELIVERY_SPOOL_DIR"
	spoolDirPath = "/var/lib/consentgate/spool"
)

// rendered is one release's manifests, decoded.
type rendered struct {
	deployment  *appsv1.Deployment
	statefulSet *appsv1.StatefulSet
	services    map[string]*corev1.Service
	configMap   *corev1.ConfigMap
	secret      *corev1.Secret
	account     *corev1.ServiceAccount
	hpa         *autoscalingv2.HorizontalPodAutoscaler
	pdb         *policyv1.PodDisruptionBudget
	monitor     *monitoringv1.ServiceMonitor
	rule        *monitoringv1.PrometheusRule
	raw         string // every manifest, in file order
}

// loadChart loads the chart once (Helm logs a note for the alerts link on
// every load).
var loadChart = func() func(t *testing.T) *chart.Chart {
	var once sync.Once
	var c *chart.Chart
	var err error
	return func(t *testing.T) *chart.Chart {
		t.Helper()
		once.Do(func() { c, err = loader.Load(chartDir) })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
}()

// render renders the chart with vals (YAML) like `helm template` does.
func render(t *testing.T, vals string) (*rendered, error) {
	t.Helper()
	c := loadChart(t)
	v, err := chartutil.ReadValues([]byte(vals))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	caps.KubeVersion = *kv
	rv, err := chartutil.ToRenderValues(c, v, chartutil.ReleaseOptions{Name: releaseName, Namespace: releaseNS, IsInstall: true, Revision: 1}, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(c, rv)
	if err != nil {
		return nil, err
	}
	return decode(t, files), nil
}

func mustRender(t *testing.T, vals string) *rendered {
	t.Helper()
	r, err := render(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decode splits the rendered files into documents and decodes each
// strictly (unknown or misspelt fields fail) into its API type.
func decode(t *testing.T, files map[string]string) *rendered {
	t.Helper()
	r := &rendered{services: map[string]*corev1.Service{}}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var raw strings.Builder
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range docSep.Split(files[name], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			var obj any
			switch meta.APIVersion + " " + meta.Kind {
			case "apps/v1 Deployment":
				r.deployment = &appsv1.Deployment{}
				obj = r.deployment
			case "apps/v1 StatefulSet":
				r.statefulSet = &appsv1.StatefulSet{}
				obj = r.statefulSet
			case "v1 Service":
				s := &corev1.Service{}
				obj = s
				defer func() { r.services[s.Name] = s }()
			case "v1 ConfigMap":
				r.configMap = &corev1.ConfigMap{}
				obj = r.configMap
			case "v1 Secret":
				r.secret = &corev1.Secret{}
				obj = r.secret
			case "v1 ServiceAccount":
				r.account = &corev1.ServiceAccount{}
				obj = r.account
			case "autoscaling/v2 HorizontalPodAutoscaler":
				r.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
				obj = r.hpa
			case "policy/v1 PodDisruptionBudget":
				r.pdb = &policyv1.PodDisruptionBudget{}
				obj = r.pdb
			case "monitoring.coreos.com/v1 ServiceMonitor":
				r.monitor = &monitoringv1.ServiceMonitor{}
				obj = r.monitor
			case "monitoring.coreos.com/v1 PrometheusRule":
				r.rule = &monitoringv1.PrometheusRule{}
				obj = r.rule
			default:
				t.Fatalf("%s: unexpected %s %s", name, meta.APIVersion, meta.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s: strict decode of %s: %v\n%s", name, meta.Kind, err, doc)
			}
			raw.WriteString("---\n# Source: " + name + "\n" + strings.TrimSpace(doc) + "\n")
		}
	}
	r.raw = raw.String()
	return r
}

func stripComments(doc string) string {
	var b strings.Builder
	for l := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l)
		}
	}
	return b.String()
}

func (r *rendered) podSpec(t *testing.T) (*corev1.PodTemplateSpec, string) {
	t.Helper()
	switch {
	case r.deployment != nil && r.statefulSet == nil:
		return &r.deployment.Spec.Template, "Deployment"
	case r.statefulSet != nil && r.deployment == nil:
		return &r.statefulSet.Spec.Template, "StatefulSet"
	}
	t.Fatal("want exactly one of Deployment and StatefulSet")
	return nil, ""
}

func env(c *corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// valueSets are the release configurations every invariant is checked on.
var valueSets = []struct {
	name, values string
	kind         string // Deployment or StatefulSet
}{
	{"defaults with inline secret", "cookieless: {secret: " + testSecret + "}\n", "Deployment"},
	{"existing secret, fixed replicas, rollout reload", `
cookieless: {existingSecret: cg-keys, secretKey: key}
autoscaling: {enabled: false}
replicaCount: 3
configReload: rollout
config:
  tags: ["G-ABC123"]
  upstream: https://G-ABC123.fps.goog
  path_prefix: /metrics
`, "Deployment"},
	{"persistent spool", `
cookieless: {secret: ` + testSecret + `}
persistence: {enabled: true, size: 5Gi, storageClass: fast}
drainSeconds: 10
shutdownSeconds: 30
`, "StatefulSet"},
	{"monitoring and admin token", `
cookieless: {secret: ` + testSecret + `}
admin: {expose: true, tokenSecret: {name: cg-admin, key: token}}
metrics:
  serviceMonitor: {enabled: true, labels: {release: prom}}
  prometheusRule: {enabled: true}
service: {type: LoadBalancer}
`, "Deployment"},
}

func TestChartInvariants(t *testing.T) {
	for _, tt := range valueSets {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRender(t, tt.values)
			tmpl, kind := r.podSpec(t)
			if kind != tt.kind {
				t.Fatalf("workload %s, want %s", kind, tt.kind)
			}
			pod := &tmpl.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := &pod.Containers[0]

			// Probes: liveness /healthz, readiness /readyz, on the public port.
			if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "http" {
				t.Errorf("liveness probe %+v, want GET /healthz on http", p)
			}
			if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "http" {
				t.Errorf("readiness probe %+v, want GET /readyz on http", p)
			}

			// Non-root, read-only, nothing extra.
			psc, sc := pod.SecurityContext, c.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
				psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod security context %+v: want runAsNonRoot, a non-zero uid, RuntimeDefault seccomp", psc)
			}
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
				t.Errorf("container security context %+v: want read-only root, no escalation, all capabilities dropped", sc)
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("the service account token is mounted; the gateway needs no API access")
			}

			// cookieless.secret comes from a Secret, shared by every replica.
			e := env(c, envSecret)
			if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("%s is not read from a Secret: %+v", envSecret, e)
			}
			ref := e.ValueFrom.SecretKeyRef
			if r.secret != nil {
				if ref.Name != r.secret.Name || r.secret.Data[ref.Key] == nil && r.secret.StringData[ref.Key] == "" {
					t.Errorf("secret ref %s/%s does not match the rendered Secret %s (keys %v)", ref.Name, ref.Key, r.secret.Name, keys(r.secret.Data))
				}
				if string(r.secret.Data[ref.Key]) != testSecret {
					t.Errorf("Secret holds %q, want the configured value", r.secret.Data[ref.Key])
				}
			} else if ref.Name != "cg-keys" || ref.Key != "key" {
				t.Errorf("secret ref %s/%s, want the existing secret cg-keys/key", ref.Name, ref.Key)
			}
			if strings.Contains(r.configMap.Data["config.yaml"], testSecret) {
				t.Error("the ConfigMap carries the cookieless secret")
			}

			// The config the pod reads is valid for this gateway build and
			// its drain and shutdown fit in the grace period.
			cfg := loadPodConfig(t, r, c)
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil || c.Lifecycle.PreStop.Sleep.Seconds <= 0 {
				t.Fatalf("no preStop sleep: %+v", c.Lifecycle)
			}
			need := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second + cfg.Timeouts.Drain + cfg.Timeouts.Shutdown + cfg.Delivery.Drain
			if grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second; grace <= need {
				t.Errorf("terminationGracePeriodSeconds %s <= preStop + drain + shutdown + delivery drain %s", grace, need)
			}
			if cfg.Delivery.SpoolDir != spoolDirPath {
				t.Errorf("delivery spool dir %q, want %s (on the data volume)", cfg.Delivery.SpoolDir, spoolDirPath)
			}
			if cfg.Listen != ":"+strconv.Itoa(int(c.Ports[0].ContainerPort)) || c.Ports[0].Name != "http" {
				t.Errorf("listen %s does not match container port %+v", cfg.Listen, c.Ports[0])
			}
			// The admin listener leaves loopback only when exposed on purpose.
			adm := r.services[releaseName+"-admin"]
			adminHost := "127.0.0.1"
			if adm != nil {
				adminHost = ""
			}
			if cfg.AdminListen != adminHost+":"+strconv.Itoa(int(c.Ports[1].ContainerPort)) || c.Ports[1].Name != "admin" {
				t.Errorf("admin_listen %s does not match container port %+v (admin Service: %v)", cfg.AdminListen, c.Ports[1], adm != nil)
			}
			if (adm != nil) != strings.Contains(tt.values, "expose: true") {
				t.Errorf("admin Service rendered: %v; want it exactly when admin.expose", adm != nil)
			}

			// Requests for the HPA and the scheduler; a memory limit.
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
			}
			// Spread over zones and nodes.
			var topo []string
			for _, s := range pod.TopologySpreadConstraints {
				topo = append(topo, s.TopologyKey)
				if !reflect.DeepEqual(s.LabelSelector.MatchLabels, tmpl.Labels) && !subset(s.LabelSelector.MatchLabels, tmpl.Labels) {
					t.Errorf("topology spread selector %v does not select the pods %v", s.LabelSelector.MatchLabels, tmpl.Labels)
				}
			}
			if !slices.Contains(topo, "topology.kubernetes.io/zone") || !slices.Contains(topo, "kubernetes.io/hostname") {
				t.Errorf("topology spread over %v, want zone and hostname", topo)
			}

			// The spool lives on a writable volume at the configured dir.
			if e := env(c, envSpool); e == nil || e.Value != spoolDirPath {
				t.Errorf("%s = %+v, want %s", envSpool, e, spoolDirPath)
			}
			if !mounted(c, "data", "/var/lib/consentgate", false) || !mounted(c, "config", "/etc/consentgate", true) {
				t.Errorf("volume mounts %+v: want data read-write at /var/lib/consentgate and config read-only", c.VolumeMounts)
			}
			for _, m := range c.VolumeMounts {
				if m.SubPath != "" {
					t.Errorf("mount %s uses subPath: ConfigMap updates would never reach the pod", m.Name)
				}
			}
			if kind == "StatefulSet" {
				ss := r.statefulSet
				if len(ss.Spec.VolumeClaimTemplates) != 1 || ss.Spec.VolumeClaimTemplates[0].Name != "data" {
					t.Errorf("StatefulSet claims %+v, want one named data", ss.Spec.VolumeClaimTemplates)
				}
				if hl := r.services[ss.Spec.ServiceName]; hl == nil || hl.Spec.ClusterIP != corev1.ClusterIPNone {
					t.Errorf("StatefulSet serviceName %q has no headless Service", ss.Spec.ServiceName)
				}
				for _, v := range pod.Volumes {
					if v.Name == "data" {
						t.Error("the StatefulSet also declares an emptyDir data volume")
					}
				}
			}

			// Services, HPA, PDB and ServiceMonitor select these pods.
			pub := r.services[releaseName]
			if pub == nil || !subset(pub.Spec.Selector, tmpl.Labels) || pub.Spec.Ports[0].TargetPort.String() != "http" {
				t.Errorf("public Service %+v does not route to the pods' http port", pub)
			}
			if adm != nil && (adm.Spec.Type != corev1.ServiceTypeClusterIP || adm.Spec.Ports[0].TargetPort.String() != "admin") {
				t.Errorf("admin Service %+v: want ClusterIP to the admin port", adm)
			}
			if r.hpa != nil {
				if ref := r.hpa.Spec.ScaleTargetRef; ref.Kind != kind || ref.Name != releaseName {
					t.Errorf("HPA targets %s/%s, want %s/%s", ref.Kind, ref.Name, kind, releaseName)
				}
				if len(r.hpa.Spec.Metrics) != 1 || r.hpa.Spec.Metrics[0].Resource == nil || r.hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
					t.Errorf("HPA metrics %+v, want CPU", r.hpa.Spec.Metrics)
				}
			}
			if r.pdb == nil || !subset(r.pdb.Spec.Selector.MatchLabels, tmpl.Labels) {
				t.Errorf("PodDisruptionBudget %+v does not select the pods", r.pdb)
			}
			if r.monitor != nil {
				if !subset(r.monitor.Spec.Selector.MatchLabels, adm.Labels) || r.monitor.Spec.Endpoints[0].Port != "admin" {
					t.Errorf("ServiceMonitor %+v does not scrape the admin Service", r.monitor.Spec)
				}
			}
		})
	}
}

// TestChartSpoolFitsItsVolume: the spool volume (the emptyDir's size
// limit, or each claim) holds the spool budget of every upstream the
// rendered config delivers to in queue mode, so that the gateway's own
// back-pressure (503 when a budget is full) comes before the kubelet
// evicts the pod, and spooled hits are not lost to the eviction.
func TestChartSpoolFitsItsVolume(t *testing.T) {
	sets := append(slices.Clone(valueSets), struct{ name, values, kind string }{"persistent spool, default size", `
cookieless: {secret: ` + testSecret + `}
persistence: {enabled: true}
spool: {maxBytesPerUpstream: 1073741824}
`, "StatefulSet"})
	for _, tt := range sets {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRender(t, tt.values)
			tmpl, kind := r.podSpec(t)
			cfg := loadPodConfig(t, r, &tmpl.Spec.Containers[0])
			var size int64
			if kind == "StatefulSet" {
				size = r.statefulSet.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().Value()
			}
			for _, v := range tmpl.Spec.Volumes {
				if v.Name == "data" && v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil {
					size = v.EmptyDir.SizeLimit.Value()
				}
			}
			lanes := queueUpstreams(cfg)
			if need := cfg.Delivery.SpoolMaxBytes * int64(len(lanes)); size < need+cfg.Delivery.SpoolSegmentBytes {
				t.Errorf("spool volume of %d bytes; the budgets of %v need %d (delivery.spool.max_bytes %d each) and a segment more",
					size, lanes, need, cfg.Delivery.SpoolMaxBytes)
			}
		})
	}
}

// queueUpstreams lists the upstreams cfg delivers queued hits to: its
// upstream in tag-gateway style, else the hosts of the routes of every
// family in queue mode (each has a lane and a spool budget of its own).
func queueUpstreams(cfg *config.Config) []string {
	if cfg.Upstream != nil {
		return []string{cfg.Upstream.Host}
	}
	var hosts []string
	for _, r := range consentmode.Routes {
		if r.Kind != consentmode.KindScript && cfg.Delivery.Mode(r.Family) == config.DeliveryQueue && !slices.Contains(hosts, r.Host) {
			hosts = append(hosts, r.Host)
		}
	}
	sort.Strings(hosts)
	return hosts
}

// TestChartReplicasAndAutoscaling: replicas come from the HPA when it is
// on (a fixed count would fight it), from replicaCount otherwise.
func TestChartReplicasAndAutoscaling(t *testing.T) {
	r := mustRender(t, valueSets[0].values)
	if r.hpa == nil || r.deployment.Spec.Replicas != nil {
		t.Errorf("autoscaling on: HPA %v, replicas %v; want an HPA and no replicas", r.hpa != nil, r.deployment.Spec.Replicas)
	}
	r = mustRender(t, valueSets[1].values)
	if r.hpa != nil || r.deployment.Spec.Replicas == nil || *r.deployment.Spec.Replicas != 3 {
		t.Errorf("autoscaling off: HPA %v, replicas %v; want no HPA and 3", r.hpa != nil, r.deployment.Spec.Replicas)
	}
}

// TestChartConfigReload: inPlace relies on the mounted ConfigMap (no
// checksum, so pods are not restarted); rollout puts the config's hash on
// the pods, so a config change rolls them.
func TestChartConfigReload(t *testing.T) {
	r := mustRender(t, valueSets[0].values)
	tmpl, _ := r.podSpec(t)
	if _, ok := tmpl.Annotations["checksum/config"]; ok {
		t.Error("inPlace: the pod template carries a config checksum")
	}
	hash := func(extra string) string {
		r := mustRender(t, valueSets[1].values+extra)
		tmpl, _ := r.podSpec(t)
		return tmpl.Annotations["checksum/config"]
	}
	a, b := hash(""), hash("  consent: {mode: basic}\n")
	if a == "" || a == b {
		t.Errorf("rollout: checksums %q and %q, want set and different for different configs", a, b)
	}
}

// TestChartRefusesUnsafeValues: what must fail at render time, with a message saying why.
func TestChartRefusesUnsafeValues(t *testing.T) {
	tests := []struct {
		name, values, want string
	}{
		{"no secret", "{}", "cookieless.secret or cookieless.existingSecret is required"},
		{"short secret", "cookieless: {secret: short}", "at least 16 bytes"},
		{"secret in the ConfigMap", "cookieless: {secret: " + testSecret + "}\nconfig: {cookieless: {secret: " + testSecret + "}}", "must not be set"},
		{"grace period too short", "cookieless: {secret: " + testSecret + "}\nterminationGracePeriodSeconds: 35", "must exceed"},
		{"delivery drain in config", "cookieless: {secret: " + testSecret + "}\nconfig: {delivery: {drain: 1m}}", "deliveryDrainSeconds"},
		{"drain in config", "cookieless: {secret: " + testSecret + "}\nconfig: {timeouts: {drain: 1s}}", "set drainSeconds"},
		{"admin exposed without a token", "cookieless: {secret: " + testSecret + "}\nadmin: {expose: true}", "needs admin.tokenSecret"},
		{"ServiceMonitor without an exposed admin listener", "cookieless: {secret: " + testSecret + "}\nmetrics: {serviceMonitor: {enabled: true}}", "needs admin.expose"},
		{"unknown reload", "cookieless: {secret: " + testSecret + "}\nconfigReload: sometimes", "'inPlace', 'rollout'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := render(t, tt.values)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("render = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestChartPrometheusRuleIsTheAlertsFile: one source for the alerts.
func TestChartPrometheusRuleIsTheAlertsFile(t *testing.T) {
	r := mustRender(t, valueSets[3].values)
	if r.rule == nil {
		t.Fatal("no PrometheusRule rendered")
	}
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var want monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(b, &want); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	if !reflect.DeepEqual(r.rule.Spec, want) {
		t.Errorf("PrometheusRule spec differs from %s", alertsFile)
	}
	var names []string
	for _, g := range want.Groups {
		for _, rule := range g.Rules {
			names = append(names, rule.Alert)
		}
	}
	for _, need := range []string{"ConsentgateUpstreamErrors", "ConsentgateDeliveryQueueOld", "ConsentgateHitsDropped", "ConsentgateMalformedSignalsSpike", "ConsentgateConfigReloadFailed"} {
		if !slices.Contains(names, need) {
			t.Errorf("alerts miss %s (have %v)", need, names)
		}
	}
}

// TestChartLint runs Helm's linter (chart metadata, templates, values)
// with the value sets above.
func TestChartLint(t *testing.T) {
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range valueSets {
		v, err := chartutil.ReadValues([]byte(tt.values))
		if err != nil {
			t.Fatal(err)
		}
		res := lint.AllWithKubeVersion(chartDir, v, releaseNS, kv)
		for _, m := range res.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("%s: helm lint: %s", tt.name, m)
			}
		}
	}
}

// plainValues render deploy/kubernetes/consentgate.yaml: the chart's
// defaults, with the secret expected in a Secret the operator creates.
const plainValues = "cookieless: {existingSecret: consentgate-cookieless}\n"

// TestPlainManifestsUpToDate: deploy/kubernetes/consentgate.yaml is the
// chart rendered with plainValues (go test ./... -update rewrites it).
func TestPlainManifestsUpToDate(t *testing.T) {
	r := mustRender(t, plainValues)
	c := loadChart(t)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# consentgate %s: plain Kubernetes manifests for clusters without Helm.\n", c.Metadata.AppVersion)
	b.WriteString("# Generated from deploy/helm/consentgate with its default values and\n")
	fmt.Fprintf(&b, "# %s (release %q, namespace %q);\n", strings.TrimSpace(plainValues), releaseName, releaseNS)
	b.WriteString("# regenerate: cd deploy/test && go test ./chart -update. Before applying, create the secret:\n")
	b.WriteString("#   kubectl -n web create secret generic consentgate-cookieless \\\n")
	b.WriteString("#     --from-literal=cookieless-secret=\"$(openssl rand -base64 32)\"\n")
	b.WriteString(r.raw)
	if *update {
		if err := os.WriteFile(plainOut, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(plainOut)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Errorf("%s is out of date: cd deploy/test && go test ./chart -update", plainOut)
	}
}

// loadPodConfig loads the ConfigMap's config.yaml with the container's
// plain environment (secrets filled in) through the gateway's own loader.
func loadPodConfig(t *testing.T, r *rendered, c *corev1.Container) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(r.configMap.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "CONSENTGATE_") {
			name, _, _ := strings.Cut(kv, "=")
			t.Setenv(name, "")
			_ = os.Unsetenv(name)
		}
	}
	for _, e := range c.Env {
		if !strings.HasPrefix(e.Name, "CONSENTGATE_") {
			continue
		}
		switch {
		case e.Name == envSecret:
			t.Setenv(e.Name, testSecret)
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			t.Setenv(e.Name, "a-test-value-from-a-secret-0123456789")
		case e.ValueFrom == nil:
			t.Setenv(e.Name, e.Value)
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("the rendered config does not load:\n%v\n%s", err, r.configMap.Data["config.yaml"])
	}
	return cfg
}

func mounted(c *corev1.Container, vol, path string, ro bool) bool {
	for _, m := range c.VolumeMounts {
		if m.Name == vol && m.MountPath == path && m.ReadOnly == ro {
			return true
		}
	}
	return false
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func keys(m map[string][]byte) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestGKEBackendConfig: the GKE recipe sets the header the chart's
// config trusts, and health-checks readiness.
func TestGKEBackendConfig(t *testing.T) {
	b, err := os.ReadFile("../../edge/gcp/gke-backendconfig.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var bc struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			CustomRequestHeaders struct {
				Headers []string `json:"headers"`
			} `json:"customRequestHeaders"`
			HealthCheck struct {
				Type               string `json:"type"`
				RequestPath        string `json:"requestPath"`
				Port               int    `json:"port"`
				CheckIntervalSec   int    `json:"checkIntervalSec"`
				TimeoutSec         int    `json:"timeoutSec"`
				HealthyThreshold   int    `json:"healthyThreshold"`
				UnhealthyThreshold int    `json:"unhealthyThreshold"`
			} `json:"healthCheck"`
			ConnectionDraining struct {
				DrainingTimeoutSec int `json:"drainingTimeoutSec"`
			} `json:"connectionDraining"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(b, &bc); err != nil {
		t.Fatal(err)
	}
	r := mustRender(t, valueSets[0].values)
	cfg := loadPodConfig(t, r, &r.deployment.Spec.Template.Spec.Containers[0])
	name, value, _ := strings.Cut(bc.Spec.CustomRequestHeaders.Headers[0], ":")
	if !slices.Contains(cfg.GeoHeaders, name) || value != "{client_region}" {
		t.Errorf("BackendConfig sets %s:%s; the chart trusts %v", name, value, cfg.GeoHeaders)
	}
	if bc.Spec.HealthCheck.RequestPath != "/readyz" || bc.Spec.HealthCheck.Port != 8080 {
		t.Errorf("health check %+v, want /readyz on 8080", bc.Spec.HealthCheck)
	}
	if bc.Spec.ConnectionDraining.DrainingTimeoutSec <= 5+5 {
		t.Errorf("connection draining %ds is not longer than preStop + drain (10s)", bc.Spec.ConnectionDraining.DrainingTimeoutSec)
	}
}

// TestValuesDocumented: every key of values.yaml has a comment above it
// (or on its line), except the Kubernetes objects and gateway config
// passed through as they are.
func TestValuesDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	passthrough := map[string]bool{"config": true, "resources": true, "podSecurityContext": true, "securityContext": true}
	key := regexp.MustCompile(`^( *)([A-Za-z][A-Za-z0-9_]*):`)
	type level struct {
		indent int
		name   string
	}
	var stack []level
	prev := ""
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		m := key.FindStringSubmatch(line)
		if m == nil {
			if trimmed != "" {
				prev = trimmed
			} else {
				prev = ""
			}
			continue
		}
		indent := len(m[1])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		inherited := false
		for _, l := range stack {
			inherited = inherited || passthrough[l.name]
		}
		stack = append(stack, level{indent, m[2]})
		if !inherited && !strings.HasPrefix(prev, "#") && !strings.Contains(line, " # ") {
			t.Errorf("values.yaml:%d: %s has no comment", i+1, strings.Join(func() []string {
				var p []string
				for _, l := range stack {
					p = append(p, l.name)
				}
				return p
			}(), "."))
		}
		prev = trimmed
	}
}

// TestChartRejectsUnknownValues: values.schema.json turns a misspelt or
// mistyped value into an error instead of a silently ignored key.
func TestChartRejectsUnknownValues(t *testing.T) {
	for _, vals := range []string{
		"cookieless: {secret: " + testSecret + "}\nreplicaCoutn: 3",
		"cookieless: {secret: " + testSecret + "}\nautoscaling: {enabeld: false}",
		"cookieless: {secret: " + testSecret + "}\nservice: {targetPort: 80}",
	} {
		if _, err := render(t, vals); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("render(%q) = %v, want a schema error", vals, err)
		}
	}
}
