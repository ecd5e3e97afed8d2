// Package kubetest runs a real Kubernetes control plane on 127.0.0.1 for
// tests: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
// kwok, which turns annotated Nodes into fake kubelets so that scheduled pods
// become Running without any container runtime.
//
// # One control plane per test package
//
// A package whose tests need the cluster shares one, and its TestMain is
// Main, which starts it, runs the tests, prints the control plane's logs if
// any failed, stops it and exits:
//
//	var cluster *kubetest.Cluster
//
//	func TestMain(m *testing.M) { kubetest.Main(m, &cluster, kubetest.Options{}) }
//
// A package whose tests need the cluster only sometimes (kir's command
// line: evidence commands and Vault rotations run without one) starts it
// with the first test that asks, through a Shared:
//
//	var controlPlane = kubetest.Shared{Options: kubetest.Options{…}}
//
//	func TestMain(m *testing.M) { controlPlane.Main(m) }
//
//	func TestX(t *testing.T) { c := controlPlane.Get(t); … }
//
// What a package's tests share besides the cluster is declared in Options
// rather than set up around Main: kwok's extra stages (ImageIDs), the logs
// its pods serve (PodLogs), an audit log (AuditLog), and Setup for
// anything else (a client, a registry), whose cleanup Stop runs.
//
// Every test gets its own namespace and kwok node from NewFixture, with a
// Deployment of N pods pinned to that node and Running: the world most
// tests start from (Fixture.Deploy adds more).
//
// # kir as a process
//
// Tests of kir's command line run kir as a real process: KirBinary builds
// it once per test process (with the kirtest tag, whose hook kills kir
// after a given journal record: KIR_TEST_KILL_AFTER), and Kir runs it with
// a kubeconfig, a state directory and environment of the test's, returning
// its exit code and output, or starts a long-running one (kir serve) for
// tests that kill it. Runs share no process state, so such tests stay
// parallel.
//
// Main also stops the Vault of SharedVault and removes KirBinary's kir,
// when tests used them.
//
// The binaries are built once by tools/build.sh (make testbin). A missing
// binary is an error, never a skip: a test that cannot reach its cluster
// fails.
//
// Every process is started from one OS thread that stays locked for the
// lifetime of the cluster, with Pdeathsig set to SIGKILL, so a test binary
// that is killed, panics or times out takes its servers with it.
//
// # A real node
//
// Options.RealNode adds one real node (Cluster.Node, named RealNodeName)
// for tests that need packets: kubelet (built by tools/build.sh), Debian's
// containerd 1.6 with runc and the CNI bridge and host-local plugins, and
// kube-router v2.1.0 as the NetworkPolicy enforcer (--run-firewall only).
// Its network is a bridge of its own, kir0, whose address 10.88.0.1 is the
// node's InternalIP and the gateway of its pods (10.88.0.0/24); pods get
// no default route and no masquerading, so they reach each other and the
// node (kubelet on Node.IP:KubeletPort) and nothing off the machine. The
// node is tainted RealNodeTaintKey=true:NoSchedule, so only pods placed
// with Node.Pin (nodeName and a toleration) run there. Its images,
// PauseImage (Kubernetes' static pause) and BusyboxImage (Debian's
// busybox-static), are built in Go and imported into containerd: nothing
// is pulled, pods use imagePullPolicy Never. Node.StopEnforcer stops
// kube-router and removes its rules (no policy is enforced any more, as
// with a network plugin that ignores them); Node.StartEnforcer starts it
// again. Node.Logs has the tails of the three logs; Cluster.Logs includes
// them.
//
// The node runs as root and changes the host, so one runs per machine:
// its start takes a lock (/run/kir-test-node.lock) that the next waits
// for, and the tests that use it live in internal/nodetest. What the node
// changes is undone when it starts (what a killed run left) and when it
// stops: the sysctls kubelet and the bridge plugin set (recorded in
// /run/kir-test-node.sysctl.json before the first start), the pods'
// processes, containerd's shims and kubelet's cgroups, the mounts under
// and the contents of the fixed paths (/var/lib/kubelet, /var/log/pods,
// /var/log/containers, /var/lib/cni, /run/containerd, /var/lib/kube-router,
// containerd's /run/kir-test-node and /var/lib/kir-test-node, the
// /run/netns/cni-* namespaces), every KUBE-* iptables chain and the rules
// jumping to one (kube-router's own cleanup removes none), kube-router's
// ipsets, the bridge and its veths. Those paths belong to the test node on
// a machine that runs it: no other kubelet or containerd may use them.
//
// RealNodePrerequisites names whatever the machine lacks (root, a binary,
// a package, a kernel module); RequireRealNode skips a test with that
// message, or fails it when CI=true.
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
