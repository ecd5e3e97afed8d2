// Package kube builds Kubernetes clients the way kubectl users expect
// (--kubeconfig, KUBECONFIG, --context, in-cluster) and asks the API server
// who kir is acting as.
package kube
