package smserver_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"kir.dev/kir/internal/smserver"
)

// TestProtocol sends raw awsJson1.1 requests, to pin down what the SDK
// relies on without going through it: the error code in both the
// X-Amzn-ErrorType header and the body's __type, and refusals of what the
// server does not implement.
func TestProtocol(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(smserver.New())
	t.Cleanup(hs.Close)

	for _, tc := range []struct {
		name, target, contentType, body string
		wantStatus                      int
		wantCode                        string
		// notInMessage must not appear in the error message: request
		// values are secrets and never echoed.
		notInMessage string
	}{
		{
			name: "created", target: "secretsmanager.CreateSecret",
			body:       `{"Name":"a","SecretString":"hunter2","ClientRequestToken":"00000000-0000-4000-8000-000000000000"}`,
			wantStatus: http.StatusOK,
		},
		{
			name: "not found", target: "secretsmanager.GetSecretValue",
			body:       `{"SecretId":"missing"}`,
			wantStatus: http.StatusBadRequest, wantCode: smserver.CodeResourceNotFound,
		},
		{
			name: "unknown operation", target: "secretsmanager.RotateSecret",
			body:       `{"SecretId":"a"}`,
			wantStatus: http.StatusBadRequest, wantCode: smserver.CodeUnknownOperation,
		},
		{
			name: "other service", target: "kms.GetSecretValue",
			body:       `{"SecretId":"a"}`,
			wantStatus: http.StatusBadRequest, wantCode: smserver.CodeUnknownOperation,
		},
		{
			name: "unimplemented member", target: "secretsmanager.PutSecretValue",
			body:       `{"SecretId":"a","SecretString":"hunter3","RotationToken":"t"}`,
			wantStatus: http.StatusBadRequest, wantCode: smserver.CodeSerialization, notInMessage: "hunter3",
		},
		{
			name: "wrong type", target: "secretsmanager.PutSecretValue",
			body:       `{"SecretId":"a","SecretString":"hunter4","VersionStages":"AWSCURRENT"}`,
			wantStatus: http.StatusBadRequest, wantCode: smserver.CodeSerialization, notInMessage: "hunter4",
		},
		{
			name: "short token", target: "secretsmanager.PutSecretValue",
			body:       `{"SecretId":"a","SecretString":"hunter5","ClientRequestToken":"short"}`,
			wantStatus: http.StatusBadRequest, wantCode: smserver.CodeValidation, notInMessage: "hunter5",
		},
		{
			name: "wrong content type", target: "secretsmanager.GetSecretValue", contentType: "application/json",
			body:       `{"SecretId":"a"}`,
			wantStatus: http.StatusBadRequest, wantCode: smserver.CodeSerialization,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, hs.URL+"/", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			ct := tc.contentType
			if ct == "" {
				ct = "application/x-amz-json-1.1"
			}
			req.Header.Set("Content-Type", ct)
			req.Header.Set("X-Amz-Target", tc.target)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.wantStatus, body)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/x-amz-json-1.1" {
				t.Errorf("Content-Type %q", got)
			}
			if got := resp.Header.Get("X-Amzn-ErrorType"); got != tc.wantCode {
				t.Errorf("X-Amzn-ErrorType %q, want %q", got, tc.wantCode)
			}
			if tc.wantCode == "" {
				return
			}
			var e struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body %s: %v", body, err)
			}
			if e.Type != tc.wantCode || e.Message == "" {
				t.Errorf("error body %s, want __type %s and a message", body, tc.wantCode)
			}
			if tc.notInMessage != "" && strings.Contains(string(body), tc.notInMessage) {
				t.Errorf("error body %s echoes the secret value", body)
			}
		})
	}
}
