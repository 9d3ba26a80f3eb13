// Package v1alpha1 declares the NodeFeature names internal/lm/output.go compiles against (see ../../../../go.mod).
package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// NodeFeatureObjNodeNameLabel is the label naming a NodeFeature's node.
const NodeFeatureObjNodeNameLabel = "nfd.node.kubernetes.io/node-name"

// Features is empty here: the harness never builds a NodeFeature.
type Features struct{}

// NewFeatures returns empty features.
func NewFeatures() *Features { return &Features{} }

// NodeFeatureSpec holds the labels GFD would publish.
type NodeFeatureSpec struct {
	Features Features
	Labels   map[string]string
}

// NodeFeature is the custom resource GFD writes with --use-node-feature-api.
type NodeFeature struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	Spec NodeFeatureSpec
}

// DeepCopy copies the object.
func (in *NodeFeature) DeepCopy() *NodeFeature {
	out := *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.Labels = map[string]string{}
	for k, v := range in.Spec.Labels {
		out.Spec.Labels[k] = v
	}
	return &out
}
