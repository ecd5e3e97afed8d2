package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"kir.dev/kir/internal/kubetest"
)

// kir rotate serviceaccount, a real process: refused without --yes
// (revocation cannot be undone), then killed right after noting the
// ServiceAccount and resumed: a token issued before is rejected, one
// issued after works, and the journal is complete.
func TestCLIRotateServiceAccountKilled(t *testing.T) {
	t.Parallel()
	c := cluster(t)
	ctx := t.Context()
	ns := newFixture(t, 0).Namespace
	if _, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	secs := int64(3600)
	old, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	args := []string{"rotate", "serviceaccount", ns + "/app", "--kubeconfig", c.Kubeconfig, "--state-dir", state}
	kir := kubetest.Kir{}
	if r := kir.Run(t, args...); r.Code != 2 || !strings.Contains(r.Stderr, "cannot be rolled back") {
		t.Fatalf("without --yes: exit %d:\n%s", r.Code, r.Stderr)
	}
	if ok, _ := review(t, c, old.Status.Token); !ok {
		t.Fatal("refused without --yes, yet the token was revoked")
	}
	r := kubetest.Kir{Env: []string{"KIR_TEST_KILL_AFTER=step-note:revoke#1"}}.Run(t, append(args, "--yes")...)
	if r.Code != -9 {
		t.Fatalf("kir was not killed: exit %d\n%s", r.Code, r.Stderr)
	}
	id := runID(t, nil, state)
	resumed := kir.MustRun(t, "runs", "resume", id, "--kubeconfig", c.Kubeconfig, "--state-dir", state)
	if s := runStatus(t, nil, state, id); s != "succeeded" {
		t.Fatalf("resumed: status %s\n%s", s, resumed.Stderr)
	}
	waitRejected(t, c, "a token issued before the rotation", old.Status.Token)
	fresh, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "app", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := review(t, c, fresh.Status.Token); !ok {
		t.Error("a token issued after the rotation does not authenticate")
	}
	noLeak(t, []string{old.Status.Token, fresh.Status.Token}, []kubetest.Result{r, resumed}, state)
}

// review asks TokenReview about a token.
func review(t *testing.T, c *kubetest.Cluster, token string) (authenticated bool, uid string) {
	t.Helper()
	tr, err := c.Client.AuthenticationV1().TokenReviews().Create(t.Context(), &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: token},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Authenticated, tr.Status.User.UID
}

// waitRejected waits until TokenReview rejects the token: API servers
// cache successful reviews for 10 s.
func waitRejected(t *testing.T, c *kubetest.Cluster, what, token string) {
	t.Helper()
	err := kubetest.Eventually(t.Context(), 30*time.Second, func(ctx context.Context) (bool, error) {
		ok, _ := review(t, c, token)
		return !ok, nil
	})
	if err != nil {
		t.Errorf("the %s token still authenticates after the rotation: %v", what, err)
	}
}
