package rotate

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"kir.dev/kir/action"
)

// An x509 client certificate cannot be revoked: the API server has no
// revocation list, and the certificate authenticates its user until it
// expires. So rotate-x509.user takes the access away from the name instead:
// it issues the replacement for a new user, NAME-kir-SUFFIX, and moves the
// user's RoleBindings and ClusterRoleBindings to it. A replacement for the
// same name would get back exactly the access the stolen certificate keeps.

const (
	// DefaultX509Expiration is the lifetime asked for a replacement
	// certificate.
	DefaultX509Expiration = 24 * time.Hour
	// minX509Expiration is the shortest expirationSeconds the API server
	// accepts.
	minX509Expiration = 10 * time.Minute
	// csrTimeout bounds the wait for the signer to issue an approved
	// certificate, and for a leftover request to be gone.
	csrTimeout  = 60 * time.Second
	csrInterval = 250 * time.Millisecond
	// x509Reason is the reason of kir's approval.
	x509Reason = "KirRotation"
)

// X509Params are rotate-x509.user's parameters.
type X509Params struct {
	SecretParams
	User       string          `json:"user" kir:"required" doc:"The x509 user (the certificate's CN) whose certificate was compromised."`
	Expiration action.Duration `json:"expiration,omitempty" doc:"Lifetime asked for the replacement certificate (default 24h, at least 10m; the signer may shorten it)."`
}

// Validate checks the parameters without I/O.
func (p X509Params) Validate() error {
	errs := []error{p.validate(), validUser("user", p.User)}
	switch e := time.Duration(p.Expiration); {
	case e < 0 || (e > 0 && e < minX509Expiration):
		errs = append(errs, fmt.Errorf("expiration %s: the API server accepts %s or more", e, minX509Expiration))
	case e/time.Second > math.MaxInt32:
		errs = append(errs, fmt.Errorf("expiration %s is too long", e))
	}
	return errors.Join(errs...)
}

func validUser(param, user string) error {
	switch {
	case user == "":
		return fmt.Errorf("%s must not be empty", param)
	case strings.HasPrefix(user, "system:"):
		// Cluster components; moving their bindings would break them.
		return fmt.Errorf("%s %q: system: users belong to the cluster's own components; kir does not move their bindings", param, user)
	case strings.ContainsFunc(user, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("%s %q contains control characters", param, user)
	}
	return nil
}

// X509Binding names a RoleBinding or ClusterRoleBinding.
type X509Binding struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (b X509Binding) String() string {
	if b.Namespace == "" {
		return b.Kind + " " + b.Name
	}
	return b.Kind + " " + b.Namespace + "/" + b.Name
}

// X509Output is rotate-x509.user's output: the record of the stored
// kubeconfig's version (as rotate.issue-kubeconfig's, for rollback) and of
// the bindings moved.
type X509Output struct {
	SecretRotation
	// User is the rotated user; NewUser the one the replacement
	// certificate authenticates as, which the bindings now name.
	User    string `json:"user"`
	NewUser string `json:"newUser"`
	// Bindings are the RoleBindings and ClusterRoleBindings moved from
	// User to NewUser, sorted.
	Bindings []X509Binding `json:"bindings"`
	// CertificateExpires is the replacement's NotAfter (RFC 3339); empty
	// in a dry run.
	CertificateExpires string `json:"certificateExpires,omitempty"`
}

// x509Note is what rotate-x509.user notes: each binding as it was before
// kir changed it, before the change, and the expiry of each certificate it
// had issued. Neither is secret: the key is never noted.
type x509Note struct {
	X509User           string          `json:"x509User"`
	Bindings           []bindingRecord `json:"bindings,omitempty"`
	CertificateExpires string          `json:"certificateExpires,omitempty"`
}

// bindingRecord is a binding as it was before kir moved it.
type bindingRecord struct {
	X509Binding
	Subjects []rbacv1.Subject `json:"subjects"`
}

// X509UserAction is rotate-x509.user, storing its kubeconfigs through s.
func (s Stores) X509UserAction() action.Action {
	return action.Func[X509Params, X509Output]{
		Name:    "rotate-x509.user",
		Summary: "Replace a compromised x509 client certificate, which Kubernetes cannot revoke: move the user's RoleBindings and ClusterRoleBindings to a new user, issue that user a certificate through a CertificateSigningRequest (kubernetes.io/kube-apiserver-client) and store a kubeconfig with it in Vault or Secrets Manager; the key is never printed.",
		Rules: []rbacv1.PolicyRule{
			kubeRule(rbacv1.GroupName, []string{"rolebindings", "clusterrolebindings"}, "list", "get", "update"),
			// Changing a binding's subjects needs bind on its role unless
			// kir holds every permission the role grants.
			kubeRule(rbacv1.GroupName, []string{"roles", "clusterroles"}, "bind"),
			kubeRule(certv1.GroupName, []string{"certificatesigningrequests"}, "create", "get", "delete"),
			kubeRule(certv1.GroupName, []string{"certificatesigningrequests/approval"}, "update"),
			{APIGroups: []string{certv1.GroupName}, Resources: []string{"signers"}, ResourceNames: []string{certv1.KubeAPIServerClientSignerName}, Verbs: []string{"approve"}},
		},
		Do: s.RotateX509User,
	}
}

// RotateX509User replaces the x509 client certificate of p.User. The old
// certificate cannot be revoked, so the user's access goes with its
// bindings: every RoleBinding and ClusterRoleBinding that names User p.User
// is changed to name a new user (p.User-kir-SUFFIX, SUFFIX derived from the
// rotation), for which a certificate is issued through a
// CertificateSigningRequest that kir approves. A kubeconfig with that
// certificate and a key generated in memory is stored as
// rotate.issue-kubeconfig stores its own.
//
// Each binding is noted (env.Note) as it was before its first change, so
// a run killed at any point and resumed changes nothing twice, and
// RestoreX509Bindings can undo the move. A key is never noted: if a run is
// killed after its request was signed but before the kubeconfig was
// stored, the resumed run issues another certificate.
func (s Stores) RotateX509User(ctx context.Context, env action.Env, p X509Params) (action.Result, error) {
	env = env.Defaults()
	if err := p.Validate(); err != nil {
		return action.Result{}, err
	}
	if env.DryRun.Writes() && env.Cluster == "" {
		return action.Result{}, errors.New("rotating x509 user: the API server's address, which the new kubeconfig needs, is unknown")
	}
	r := &x509Rotation{
		env: env, stores: s, p: p, j: &action.WriteLog{Dry: env.DryRun},
		newUser: X509NewUser(p.Rotation, p.User), csr: "kir-x509-" + x509Suffix(p.Rotation, p.User),
	}
	r.out = X509Output{User: p.User, NewUser: r.newUser, Bindings: []X509Binding{}}
	err := r.run(ctx)
	return action.Result{Changed: r.changed, Output: r.out, Warnings: r.warnings, Writes: r.j.Writes()}, err
}

// X509NewUser is the user rotate-x509.user moves user's bindings to in
// the given rotation: the same on every attempt, different for every
// rotation. A rollback can compute it even if the rotation failed.
func X509NewUser(rotation, user string) string {
	return user + "-kir-" + x509Suffix(rotation, user)
}

// x509Suffix is the new user's suffix, DNS-safe, which also names the
// rotation's CertificateSigningRequest.
func x509Suffix(rotation, user string) string {
	h := sha256.Sum256([]byte("kir x509-user\x00" + rotation + "\x00" + user))
	return hex.EncodeToString(h[:5])
}

type x509Rotation struct {
	env      action.Env
	stores   Stores
	p        X509Params
	j        *action.WriteLog
	newUser  string
	csr      string // the CertificateSigningRequest's name
	out      X509Output
	changed  bool
	warnings []string
}

func (r *x509Rotation) run(ctx context.Context) error {
	var notes []x509Note
	for _, n := range notesOf[x509Note](r.env) {
		if n.X509User == r.p.User {
			notes = append(notes, n)
		}
	}
	if err := r.moveBindings(ctx, notes); err != nil {
		return err
	}
	res, err := r.store(ctx)
	if err != nil {
		return err
	}
	if r.out.CertificateExpires == "" { // issued and stored by an earlier attempt
		for _, n := range notes {
			if n.CertificateExpires != "" {
				r.out.CertificateExpires = n.CertificateExpires
			}
		}
	}
	if err := r.deleteRequest(ctx); err != nil {
		// The request holds no secret: a leftover is untidy, not unsafe.
		r.warn("the CertificateSigningRequest %s could not be deleted: %v", r.csr, err)
	}
	r.warnings = append([]string{fmt.Sprintf("x509 client certificates cannot be revoked: the old certificate for %s stays valid until it expires (the API server trusts any certificate its client CA signed); its RoleBindings and ClusterRoleBindings now name %s; bindings by group (the certificate's O=), and membership of system:masters, are beyond kir's reach: if the certificate names system:masters, only replacing the cluster's client CA takes its access away", r.p.User, r.newUser)}, r.warnings...)
	r.warnings = append(r.warnings, res.Warnings...)
	return nil
}

func (r *x509Rotation) warn(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

// moveBindings changes every binding that names the user to name the new
// user instead, noting each one first.
func (r *x509Rotation) moveBindings(ctx context.Context, notes []x509Note) error {
	noted := map[X509Binding]bool{}
	for _, n := range notes {
		for _, b := range n.Bindings {
			noted[b.X509Binding] = true
		}
	}
	current, err := bindingsNaming(ctx, r.env.Kube, r.p.User)
	if err != nil {
		return fmt.Errorf("rotating x509 user %s: %w", r.p.User, err)
	}
	var fresh []bindingRecord
	for _, b := range current {
		if !noted[b.X509Binding] {
			fresh = append(fresh, b)
		}
	}
	if len(fresh) > 0 && r.env.DryRun.Persists() {
		if err := note(r.env, x509Note{X509User: r.p.User, Bindings: fresh}); err != nil {
			return fmt.Errorf("rotating x509 user %s: noting its bindings before changing them: %w", r.p.User, err)
		}
	}
	var errs []error
	for _, b := range current {
		if err := r.rename(ctx, b, r.p.User, r.newUser); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rotating x509 user %s: %w", r.p.User, err)
	}
	for _, b := range current {
		noted[b.X509Binding] = true
	}
	for b := range noted {
		r.out.Bindings = append(r.out.Bindings, b)
	}
	sortBindings(r.out.Bindings)
	if len(r.out.Bindings) == 0 {
		r.warn("no RoleBinding or ClusterRoleBinding names user %s: whatever it may do, it may do through its groups, which kir cannot see, and %s has no permission", r.p.User, r.newUser)
	}
	return nil
}

// rename replaces User from with User to in a binding's subjects, with
// the binding's resourceVersion (read again on a conflict).
func (r *x509Rotation) rename(ctx context.Context, b bindingRecord, from, to string) error {
	next, _ := renamed(b.Subjects, from, to)
	w := action.Write{Verb: "update", Kind: b.Kind, Namespace: b.Namespace, Name: b.Name, Body: map[string]any{"subjects": next}}
	err := r.j.Do(w, func() (any, error) { return updateSubjects(ctx, r.env, b.X509Binding, from, to) })
	if err != nil {
		return fmt.Errorf("moving %s from %s to %s: %w", b, from, to, err)
	}
	r.changed = true
	r.env.Log.Info("moved binding", "binding", b.String(), "from", from, "to", to)
	return nil
}

// store issues the certificate and stores the kubeconfig, unless an earlier
// attempt stored it.
func (r *x509Rotation) store(ctx context.Context) (action.Result, error) {
	ref, _ := ParseRef(r.p.Ref)
	if ref.Store == StoreVault && ref.Key == "" {
		ref.Key = "kubeconfig"
	}
	var issued string // one certificate per process, however often asked
	newValue := func(string) (string, error) {
		if issued != "" {
			return issued, nil
		}
		v, err := r.issueKubeconfig(ctx)
		issued = v
		return v, err
	}
	res, err := r.stores.issue(ctx, r.env, ref, r.p.SecretParams, true, newValues{of: newValue})
	if err != nil {
		return res, fmt.Errorf("rotating x509 user %s: %w", r.p.User, err)
	}
	if rec, ok := res.Output.(SecretRotation); ok {
		r.out.SecretRotation = rec
	}
	r.changed = r.changed || res.Changed
	return res, nil
}

// issueKubeconfig has a certificate issued for the new user and returns a
// kubeconfig with it and its key. The key lives only in this process: a
// request left by an earlier attempt is deleted and made again.
func (r *x509Rotation) issueKubeconfig(ctx context.Context) (string, error) {
	if !r.env.DryRun.Writes() {
		r.j.Add(action.Write{Verb: "create", Kind: "CertificateSigningRequest", Name: r.csr})
		return "(not issued: client dry run)", nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generating a key: %w", err)
	}
	request, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: r.newUser}}, key)
	if err != nil {
		return "", fmt.Errorf("making a certificate request for %s: %w", r.newUser, err)
	}
	if err := r.createRequest(ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: request})); err != nil {
		return "", err
	}
	if !r.env.DryRun.Persists() {
		return "(not issued: server dry run)", nil
	}
	if err := r.approve(ctx); err != nil {
		return "", err
	}
	certPEM, notAfter, err := r.waitCertificate(ctx)
	if err != nil {
		return "", err
	}
	r.out.CertificateExpires = notAfter.UTC().Format(time.RFC3339)
	if err := note(r.env, x509Note{X509User: r.p.User, CertificateExpires: r.out.CertificateExpires}); err != nil {
		return "", fmt.Errorf("noting the new certificate's expiry: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", errors.New("encoding the new key failed") // never the key
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	return kubeconfigForCert(r.env.Cluster, r.env.ClusterCA, r.newUser, certPEM, keyPEM)
}

// createRequest creates the CertificateSigningRequest, deleting first one
// an earlier attempt left: its key died with that attempt.
func (r *x509Rotation) createRequest(ctx context.Context, request []byte) error {
	csrs := r.env.Kube.CertificatesV1().CertificateSigningRequests()
	if r.env.DryRun.Persists() {
		old, err := csrs.Get(ctx, r.csr, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("getting CertificateSigningRequest %s: %w", r.csr, err)
		default:
			if err := r.deleteAndWait(ctx, old.UID); err != nil {
				return err
			}
		}
	}
	csr := &certv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: r.csr, Labels: map[string]string{action.LabelManagedBy: action.ManagedByKir}},
		Spec: certv1.CertificateSigningRequestSpec{
			Request:           request,
			SignerName:        certv1.KubeAPIServerClientSignerName,
			Usages:            []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageClientAuth},
			ExpirationSeconds: ptr.To(int32(r.expiration() / time.Second)),
		},
	}
	if r.env.Incident != "" {
		csr.Annotations = map[string]string{action.AnnotationIncident: r.env.Incident}
	}
	err := r.j.Do(action.Write{Verb: "create", Kind: "CertificateSigningRequest", Name: r.csr}, func() (any, error) {
		_, err := csrs.Create(ctx, csr, metav1.CreateOptions{FieldManager: action.FieldManager, DryRun: r.env.DryRun.Opts()})
		return nil, err
	})
	if err != nil {
		return fmt.Errorf("creating CertificateSigningRequest %s for %s: %w", r.csr, r.newUser, err)
	}
	return nil
}

func (r *x509Rotation) expiration() time.Duration {
	if r.p.Expiration == 0 {
		return DefaultX509Expiration
	}
	return time.Duration(r.p.Expiration)
}

// deleteAndWait deletes the request of UID uid and waits until it is gone.
func (r *x509Rotation) deleteAndWait(ctx context.Context, uid types.UID) error {
	csrs := r.env.Kube.CertificatesV1().CertificateSigningRequests()
	if err := r.deleteRequest(ctx); err != nil {
		return err
	}
	err := wait.PollUntilContextTimeout(ctx, csrInterval, csrTimeout, true, func(ctx context.Context) (bool, error) {
		got, err := csrs.Get(ctx, r.csr, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return err == nil && got.UID != uid, err
	})
	if err != nil {
		return fmt.Errorf("waiting for the CertificateSigningRequest %s an interrupted attempt left to be deleted: %w", r.csr, err)
	}
	return nil
}

// deleteRequest deletes the CertificateSigningRequest if it exists.
func (r *x509Rotation) deleteRequest(ctx context.Context) error {
	if !r.env.DryRun.Persists() {
		return nil // never created
	}
	csrs := r.env.Kube.CertificatesV1().CertificateSigningRequests()
	if _, err := csrs.Get(ctx, r.csr, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return nil
	}
	return r.j.Do(action.Write{Verb: "delete", Kind: "CertificateSigningRequest", Name: r.csr}, func() (any, error) {
		err := csrs.Delete(ctx, r.csr, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	})
}

// approve approves the request, as kubectl certificate approve does.
func (r *x509Rotation) approve(ctx context.Context) error {
	csrs := r.env.Kube.CertificatesV1().CertificateSigningRequests()
	err := r.j.Do(action.Write{Verb: "update", Kind: "CertificateSigningRequest/approval", Name: r.csr}, func() (any, error) {
		return nil, retry.RetryOnConflict(retry.DefaultRetry, func() error {
			csr, err := csrs.Get(ctx, r.csr, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if approved(csr) {
				return nil
			}
			csr.Status.Conditions = append(csr.Status.Conditions, certv1.CertificateSigningRequestCondition{
				Type: certv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: x509Reason,
				Message: fmt.Sprintf("kir: replacement for the x509 certificate of %s (incident %q)", r.p.User, r.env.Incident),
			})
			_, err = csrs.UpdateApproval(ctx, r.csr, csr, metav1.UpdateOptions{FieldManager: action.FieldManager})
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("approving CertificateSigningRequest %s: %w", r.csr, err)
	}
	return nil
}

func approved(csr *certv1.CertificateSigningRequest) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == certv1.CertificateApproved && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// waitCertificate waits for the signer to issue the certificate, and
// returns it (PEM) with its expiry.
func (r *x509Rotation) waitCertificate(ctx context.Context) ([]byte, time.Time, error) {
	csrs := r.env.Kube.CertificatesV1().CertificateSigningRequests()
	var certPEM []byte
	err := wait.PollUntilContextTimeout(ctx, csrInterval, csrTimeout, true, func(ctx context.Context) (bool, error) {
		csr, err := csrs.Get(ctx, r.csr, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range csr.Status.Conditions {
			if (c.Type == certv1.CertificateDenied || c.Type == certv1.CertificateFailed) && c.Status == corev1.ConditionTrue {
				return false, fmt.Errorf("%s: %s: %s", c.Type, c.Reason, c.Message)
			}
		}
		certPEM = csr.Status.Certificate
		return len(certPEM) > 0, nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("waiting for the signer %s to issue CertificateSigningRequest %s (is kube-controller-manager's --cluster-signing-cert-file set?): %w", certv1.KubeAPIServerClientSignerName, r.csr, err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return nil, time.Time{}, fmt.Errorf("CertificateSigningRequest %s: the issued certificate is not PEM", r.csr)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("CertificateSigningRequest %s: parsing the issued certificate: %w", r.csr, err)
	}
	if cert.Subject.CommonName != r.newUser {
		return nil, time.Time{}, fmt.Errorf("CertificateSigningRequest %s: the issued certificate is for %q, not %q", r.csr, cert.Subject.CommonName, r.newUser)
	}
	return certPEM, cert.NotAfter, nil
}

// kubeconfigForCert returns a kubeconfig that authenticates as user with a
// client certificate.
func kubeconfigForCert(server string, ca []byte, user string, certPEM, keyPEM []byte) (string, error) {
	return kubeconfig(server, ca, user, "", &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM})
}

// bindingsNaming lists the RoleBindings (of every namespace) and
// ClusterRoleBindings that have User user among their subjects.
func bindingsNaming(ctx context.Context, kube kubernetes.Interface, user string) ([]bindingRecord, error) {
	var out []bindingRecord
	rbs, err := kube.RbacV1().RoleBindings(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing RoleBindings: %w", err)
	}
	for _, b := range rbs.Items {
		if slices.ContainsFunc(b.Subjects, isUser(user)) {
			out = append(out, bindingRecord{X509Binding{Kind: "RoleBinding", Namespace: b.Namespace, Name: b.Name}, b.Subjects})
		}
	}
	crbs, err := kube.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing ClusterRoleBindings: %w", err)
	}
	for _, b := range crbs.Items {
		if slices.ContainsFunc(b.Subjects, isUser(user)) {
			out = append(out, bindingRecord{X509Binding{Kind: "ClusterRoleBinding", Name: b.Name}, b.Subjects})
		}
	}
	return out, nil
}

func isUser(name string) func(rbacv1.Subject) bool {
	return func(s rbacv1.Subject) bool {
		return s.Kind == rbacv1.UserKind && s.Name == name && (s.APIGroup == "" || s.APIGroup == rbacv1.GroupName)
	}
}

// renamed returns subjects with User from replaced by User to, once, and
// whether anything changed.
func renamed(subjects []rbacv1.Subject, from, to string) ([]rbacv1.Subject, bool) {
	out := make([]rbacv1.Subject, 0, len(subjects))
	changed, seen := false, false
	for _, s := range subjects {
		if isUser(from)(s) {
			s, changed = rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: to}, true
		}
		if isUser(to)(s) {
			if seen {
				continue
			}
			seen = true
		}
		out = append(out, s)
	}
	return out, changed
}

// updateSubjects renames User from to User to in a binding, reading it
// again on a conflict. A binding that no longer names from, or is gone, is
// left alone.
func updateSubjects(ctx context.Context, env action.Env, b X509Binding, from, to string) (any, error) {
	opts := metav1.UpdateOptions{FieldManager: action.FieldManager, DryRun: env.DryRun.Opts()}
	rbac := env.Kube.RbacV1()
	var sent any
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var err error
		switch b.Kind {
		case "RoleBinding":
			var rb *rbacv1.RoleBinding
			if rb, err = rbac.RoleBindings(b.Namespace).Get(ctx, b.Name, metav1.GetOptions{}); err != nil {
				return err
			}
			next, changed := renamed(rb.Subjects, from, to)
			if !changed {
				return nil
			}
			rb.Subjects = next
			sent, err = rbac.RoleBindings(b.Namespace).Update(ctx, rb, opts)
		case "ClusterRoleBinding":
			var crb *rbacv1.ClusterRoleBinding
			if crb, err = rbac.ClusterRoleBindings().Get(ctx, b.Name, metav1.GetOptions{}); err != nil {
				return err
			}
			next, changed := renamed(crb.Subjects, from, to)
			if !changed {
				return nil
			}
			crb.Subjects = next
			sent, err = rbac.ClusterRoleBindings().Update(ctx, crb, opts)
		default:
			return fmt.Errorf("unknown binding kind %q", b.Kind)
		}
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil, nil // deleted meanwhile: it grants nothing either way
	}
	return sent, err
}

func sortBindings(bs []X509Binding) {
	slices.SortFunc(bs, func(a, b X509Binding) int {
		return strings.Compare(a.Kind+"\x00"+a.Namespace+"\x00"+a.Name, b.Kind+"\x00"+b.Namespace+"\x00"+b.Name)
	})
}

// X509RestoreParams are rotate-x509.restore's parameters: the user and new
// user of a rotate-x509.user output.
type X509RestoreParams struct {
	User    string `json:"user" kir:"required" doc:"The x509 user whose bindings the rotation moved."`
	NewUser string `json:"newUser" kir:"required" doc:"The user the rotation moved them to (its output's newUser)."`
}

// Validate checks the parameters without I/O.
func (p X509RestoreParams) Validate() error {
	errs := []error{validUser("user", p.User), validUser("newUser", p.NewUser)}
	if p.User != "" && !strings.HasPrefix(p.NewUser, p.User+"-kir-") {
		errs = append(errs, fmt.Errorf("newUser %q is not a user rotate-x509.user made for %q (%s-kir-SUFFIX)", p.NewUser, p.User, p.User))
	}
	return errors.Join(errs...)
}

// X509RestoreAction is rotate-x509.restore, the rollback of
// rotate-x509.user's bindings.
func X509RestoreAction() action.Action {
	return action.Func[X509RestoreParams, map[string]any]{
		Name:    "rotate-x509.restore",
		Summary: "Undo rotate-x509.user's move of bindings: every RoleBinding and ClusterRoleBinding that names the new user names the old user again, whose certificate regains its access.",
		Rules: []rbacv1.PolicyRule{
			kubeRule(rbacv1.GroupName, []string{"rolebindings", "clusterrolebindings"}, "list", "get", "update"),
			kubeRule(rbacv1.GroupName, []string{"roles", "clusterroles"}, "bind"),
		},
		Do: RestoreX509Bindings,
	}
}

// RestoreX509Bindings gives the bindings rotate-x509.user moved back to the
// old user: in every RoleBinding and ClusterRoleBinding, User p.NewUser is
// replaced by User p.User. The new user exists only for the rotation, so
// these are the bindings it moved, and any binding given to the new user
// since. Subjects added or removed since are kept as they are. The
// certificate issued for the new user stays valid, with no binding left.
func RestoreX509Bindings(ctx context.Context, env action.Env, p X509RestoreParams) (action.Result, error) {
	env = env.Defaults()
	if err := p.Validate(); err != nil {
		return action.Result{}, err
	}
	r := &x509Rotation{env: env, j: &action.WriteLog{Dry: env.DryRun}}
	out := map[string]any{"user": p.User, "newUser": p.NewUser, "bindings": []X509Binding{}}
	current, err := bindingsNaming(ctx, env.Kube, p.NewUser)
	if err != nil {
		return action.Result{}, fmt.Errorf("restoring the bindings of x509 user %s: %w", p.User, err)
	}
	var errs []error
	var done []X509Binding
	for _, b := range current {
		if err := r.rename(ctx, b, p.NewUser, p.User); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, b.X509Binding)
	}
	sortBindings(done)
	if len(done) > 0 {
		out["bindings"] = done
	}
	res := action.Result{Changed: r.changed, Output: out, Writes: r.j.Writes()}
	if len(done) > 0 {
		res.Warnings = []string{fmt.Sprintf("%s's bindings name %s again, so its old certificate has its access back; the certificate kir issued for %s stays valid until it expires, with no binding left", p.User, p.User, p.NewUser)}
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("restoring the bindings of x509 user %s: %w", p.User, err)
	}
	return res, nil
}
