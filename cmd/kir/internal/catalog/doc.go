// Package catalog is the list of actions kir ships, built explicitly (no
// init-time registration), and the least-privilege ClusterRoles derived
// from what those actions declare they need.
package catalog
