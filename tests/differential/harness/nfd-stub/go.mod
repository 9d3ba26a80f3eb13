// A compile-time stand-in for the two node-feature-discovery packages k8s-device-plugin v0.17.4 imports for
// GFD's NodeFeature API output (internal/lm/output.go, internal/flags/kubeclient.go). The Go module proxy the kit
// builds from refuses sigs.k8s.io/node-feature-discovery v0.15.7, and the harness never writes labels through
// that API, so scripts/build-difftest replaces the module with this one. Every function fails if called.
module sigs.k8s.io/node-feature-discovery

go 1.23.0

require (
	k8s.io/apimachinery v0.31.3
	k8s.io/client-go v0.31.3
)
