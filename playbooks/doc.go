// Package playbooks is kir's response language: the playbook format, its
// strict loader and validator, the built-in playbooks, and the engine that
// runs a playbook's steps as actions, recording each one in a durable
// journal so that a killed run can be resumed.
//
// A playbook is YAML:
//
//	apiVersion: kir.dev/v1alpha1
//	kind: Playbook
//	metadata:
//	  name: contain-pod
//	description: Isolate a pod, then cordon its node.
//	parameters:
//	  - name: namespace
//	    type: string
//	    required: true
//	steps:
//	  - name: isolate
//	    action: contain.isolate-pod
//	    with:
//	      namespace: ${{ params.namespace }}
//	  - name: cordon
//	    action: contain.cordon-node
//	    when: size(steps.isolate.output.nodes) > 0
//	    with:
//	      nodes: ${{ steps.isolate.output.nodes }}
//
// Values in with: and the when: condition are CEL expressions
// (https://cel.dev), the language Kubernetes itself uses for validation and
// admission policies: side-effect free, always terminating, type-checked.
// See docs/playbooks.md for the reference.
package playbooks
