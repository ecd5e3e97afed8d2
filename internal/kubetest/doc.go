// Package kubetest runs a real Kubernetes control plane on 127.0.0.1 for
// tests: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// kwok, which turns annotated Nodes into fake kubelets so that scheduled pods
// become Running without any container runtime.
//
// A package that tests against the cluster starts one in TestMain:
//
//	func TestMain(m *testing.M) {
//		ctx := context.Background()
//		c, err := kubetest.Start(ctx, kubetest.Options{})
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		cluster = c
//		code := m.Run()
//		c.Stop()
//		os.Exit(code)
//	}
//
// and gives every test its own namespace (Cluster.Namespace) and, when it
// needs pods to run, its own node (Cluster.AddNode).
//
// The binaries are built once by tools/build.sh (make testbin). A missing
// binary is an error, never a skip: a test that cannot reach its cluster
// fails.
//
// Every process is started from one OS thread that stays locked for the
// lifetime of the cluster, with Pdeathsig set to SIGKILL, so a test binary
// that is killed, panics or times out takes its servers with it.
//
// # Environment
//
//	Variable        Meaning
//	KIR_TEST_BIN    directory holding the binaries; wins over KIR_TEST_CACHE
//	KIR_TEST_CACHE  cache root of tools/build.sh; binaries in $KIR_TEST_CACHE/bin
//	                (default ~/.cache/kir-test)
//	KIR_TEST_KEEP   "1" keeps Cluster.Dir after Stop, for a post-mortem
//
// None of them is sensitive, but a kept Dir is: it holds the admin token,
// the CA keys and the service account signing key of that cluster.
//
// Cluster directories are named kubetest-<pid>-* in the temporary
// directory. Start removes those whose process is gone (a test binary that
// was killed or timed out never calls Stop), except the ones created while
// KIR_TEST_KEEP=1.
package kubetest
