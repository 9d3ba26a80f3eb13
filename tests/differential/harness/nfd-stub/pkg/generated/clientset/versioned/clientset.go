// Package versioned declares the NodeFeature client internal/lm and internal/flags compile against; it cannot
// reach an API server (see ../../../../go.mod).
package versioned

import (
	"context"
	"errors"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"sigs.k8s.io/node-feature-discovery/pkg/apis/nfd/v1alpha1"
)

var errStub = errors.New("node-feature-discovery client not available in the mig-conformance difftest build")

// NodeFeatureInterface reads and writes NodeFeature objects.
type NodeFeatureInterface interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*v1alpha1.NodeFeature, error)
	Create(ctx context.Context, nf *v1alpha1.NodeFeature, opts metav1.CreateOptions) (*v1alpha1.NodeFeature, error)
	Update(ctx context.Context, nf *v1alpha1.NodeFeature, opts metav1.UpdateOptions) (*v1alpha1.NodeFeature, error)
}

// NfdV1alpha1Interface gives the NodeFeature client of a namespace.
type NfdV1alpha1Interface interface {
	NodeFeatures(namespace string) NodeFeatureInterface
}

// Interface is the clientset.
type Interface interface {
	NfdV1alpha1() NfdV1alpha1Interface
}

// Clientset never connects.
type Clientset struct{}

// NewForConfig fails: there is no NodeFeature API in the harness.
func NewForConfig(*rest.Config) (*Clientset, error) { return nil, errStub }

// NfdV1alpha1 returns a client whose calls fail.
func (*Clientset) NfdV1alpha1() NfdV1alpha1Interface { return failing{} }

type failing struct{}

func (failing) NodeFeatures(string) NodeFeatureInterface { return failing{} }

func (failing) Get(context.Context, string, metav1.GetOptions) (*v1alpha1.NodeFeature, error) {
	return nil, errStub
}

func (failing) Create(context.Context, *v1alpha1.NodeFeature, metav1.CreateOptions) (*v1alpha1.NodeFeature, error) {
	return nil, errStub
}

func (failing) Update(context.Context, *v1alpha1.NodeFeature, metav1.UpdateOptions) (*v1alpha1.NodeFeature, error) {
	return nil, errStub
}
