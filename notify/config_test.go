package notify_test

import (
	"strings"
	"testing"

	"kir.dev/kir/notify"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		want       []string // substrings of the error; none: valid
	}{
		{name: "valid", yaml: `
sinks:
  - {name: oncall, type: webhook, urlFile: /etc/kir/u, keyFile: /etc/kir/k, tokenFile: /etc/kir/t, events: [held, failed], timeout: 3s}
  - {name: chat, type: slack, urlFile: /etc/kir/slack}
digest: {after: 10, window: 1m}
giveUpAfter: 12h
`},
		{name: "empty", yaml: `sinks: []`},
		{name: "unknown key", yaml: `sinks: [{name: a, type: slack, urlFile: f, url: "https://hooks.slack.com/x"}]`,
			want: []string{"field url not found"}},
		{name: "every problem at once", yaml: `
sinks:
  - {name: Oncall, type: webhook, urlFile: f}
  - {type: slack, keyFile: k, tokenFile: t}
  - {name: x, type: email, urlFile: f, events: [held, held, paged], timeout: 2m}
  - {name: x, type: slack, urlFile: f}
digest: {after: -1, window: 2h}
giveUpAfter: 10s
`, want: []string{
			`notifications.sinks[0].name: "Oncall" is not a name`,
			"notifications.sinks[0].keyFile: missing",
			"notifications.sinks[1].name: missing",
			"notifications.sinks[1].keyFile: not taken by type slack",
			"notifications.sinks[1].tokenFile: not taken by type slack",
			"notifications.sinks[1].urlFile: missing",
			`notifications.sinks[2].type: "email" is not a sink type`,
			`notifications.sinks[2].events[1]: "held" is listed twice`,
			`notifications.sinks[2].events[2]: "paged" is not an event kind`,
			"notifications.sinks[2].timeout: 2m0s is not between 100ms and 1m",
			`notifications.sinks[3].name: "x" is already the name of sinks[2]`,
			"notifications.digest.after: -1 is negative",
			"notifications.digest.window: 2h0m0s is not between 1s and 1h",
			"notifications.giveUpAfter: 10s is under 1m",
		}},
		{name: "durations too short", yaml: `{sinks: [{name: a, type: slack, urlFile: f, timeout: 1ms}], digest: {window: 10ms}}`,
			want: []string{"notifications.sinks[0].timeout: 1ms is not between 100ms and 1m", "notifications.digest.window: 10ms is not between 1s and 1h"}},
		{name: "a duration without its unit", yaml: `giveUpAfter: 3600`, want: []string{"cannot unmarshal !!int `3600` into time.Duration"}},
		{name: "type missing", yaml: `sinks: [{name: a, urlFile: f}]`, want: []string{"notifications.sinks[0].type: missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := notify.ParseConfig([]byte(tc.yaml))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; len(tc.want) > 1 && n != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%v", n, len(tc.want), err)
			}
		})
	}
}

// Open reads the secret files and says which field and file is wrong,
// never what a file holds.
func TestOpenSecretFiles(t *testing.T) {
	t.Parallel()
	url := writeFile(t, "url", "https://example.invalid/hook")
	for _, tc := range []struct {
		name string
		sink notify.SinkConfig
		want string
	}{
		{name: "no url file", sink: notify.SinkConfig{Name: "a", Type: notify.TypeSlack, URLFile: "/nonexistent/url"}, want: "notifications.sinks[0] (a): urlFile: open /nonexistent/url"},
		{name: "empty url file", sink: notify.SinkConfig{Name: "a", Type: notify.TypeSlack, URLFile: writeFile(t, "empty", " ")}, want: "is empty"},
		{name: "short key", sink: notify.SinkConfig{Name: "a", Type: notify.TypeWebhook, URLFile: url, KeyFile: writeFile(t, "key", "short-key-xyz")}, want: "shorter than 16 bytes"},
		{name: "short token", sink: notify.SinkConfig{Name: "a", Type: notify.TypeWebhook, URLFile: url, KeyFile: writeFile(t, "key", string(testKey)), TokenFile: writeFile(t, "tok", "tok-xyz")}, want: "tokenFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := notify.Open(t.TempDir(), &notify.Config{Sinks: []notify.SinkConfig{tc.sink}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "short-key-xyz") || strings.Contains(err.Error(), "tok-xyz") {
				t.Fatalf("error holds the secret: %v", err)
			}
		})
	}
}
