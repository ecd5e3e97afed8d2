package notify

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// SinkType says how a sink is sent to.
type SinkType string

// The sink types.
const (
	// TypeWebhook POSTs the Message as JSON, signed with HMAC-SHA256.
	TypeWebhook SinkType = "webhook"
	// TypeSlack POSTs {"text": ...} in Slack's mrkdwn to a Slack
	// (or compatible) incoming webhook, whose URL is its secret.
	TypeSlack SinkType = "slack"
)

// Defaults of the settings Config leaves zero.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultDigestAfter  = 5
	DefaultDigestWindow = 30 * time.Second
	DefaultGiveUpAfter  = 24 * time.Hour
)

// Config is the notifications section of the routing config
// ("notifications:"). Secrets are never written in it, only the files
// that hold them.
type Config struct {
	// Sinks are where notifications go; none sends nothing.
	Sinks []SinkConfig `yaml:"sinks"`
	// Digest sets when a storm of events is sent as one message.
	Digest DigestConfig `yaml:"digest,omitempty"`
	// GiveUpAfter is how long a message is retried, counted from when its
	// (oldest) event was enqueued; DefaultGiveUpAfter if zero.
	GiveUpAfter time.Duration `yaml:"giveUpAfter,omitempty"`
}

// SinkConfig is one sink.
type SinkConfig struct {
	// Name identifies the sink in logs and metrics; unique.
	Name string `yaml:"name"`
	// Type is webhook or slack.
	Type SinkType `yaml:"type"`
	// URLFile is the file that holds the URL (for Slack, the URL is the
	// secret).
	URLFile string `yaml:"urlFile"`
	// KeyFile holds the webhook's HMAC-SHA256 key (at least 16 bytes);
	// required for webhook, not taken by slack.
	KeyFile string `yaml:"keyFile,omitempty"`
	// TokenFile, for webhook, holds a bearer token sent in an
	// Authorization header (kir serve's intake wants one).
	TokenFile string `yaml:"tokenFile,omitempty"`
	// Events are the kinds sent to the sink; all if empty.
	Events []Kind `yaml:"events,omitempty"`
	// Timeout bounds one attempt: DefaultTimeout if zero, else 100ms..1m.
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

// DigestConfig: more than After events for one sink within Window are
// sent as digests (one per Window) instead of one message each.
type DigestConfig struct {
	After  int           `yaml:"after,omitempty"`
	Window time.Duration `yaml:"window,omitempty"`
}

var sinkNameRE = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)

// ParseConfig decodes a notifications section strictly (an unknown key
// is an error) and validates it.
func ParseConfig(data []byte) (*Config, error) {
	d := yaml.NewDecoder(bytes.NewReader(data))
	d.KnownFields(true)
	var c Config
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate returns every problem of c at once, each naming its field
// ("notifications.sinks[0].keyFile: ..."). It reads no file: Open does.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("notifications.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	seen := map[string]int{}
	for i, s := range c.Sinks {
		s.validate(fmt.Sprintf("sinks[%d]", i), bad)
		if j, dup := seen[s.Name]; dup && s.Name != "" {
			bad(fmt.Sprintf("sinks[%d].name", i), "%q is already the name of sinks[%d]", s.Name, j)
		} else {
			seen[s.Name] = i
		}
	}
	if c.Digest.After < 0 {
		bad("digest.after", "%d is negative", c.Digest.After)
	}
	if c.Digest.Window != 0 && (c.Digest.Window < time.Second || c.Digest.Window > time.Hour) {
		bad("digest.window", "%s is not between 1s and 1h", c.Digest.Window)
	}
	if c.GiveUpAfter < 0 {
		bad("giveUpAfter", "%s is negative", c.GiveUpAfter)
	} else if c.GiveUpAfter > 0 && c.GiveUpAfter < time.Minute {
		bad("giveUpAfter", "%s is under 1m: a receiver down for a minute would lose held messages", c.GiveUpAfter)
	}
	return errors.Join(errs...)
}

func (s *SinkConfig) validate(at string, bad func(field, format string, args ...any)) {
	switch {
	case s.Name == "":
		bad(at+".name", "missing: name the sink (lower case, digits, '-')")
	case !sinkNameRE.MatchString(s.Name):
		bad(at+".name", "%q is not a name: lower case letters, digits and '-', at most 63", s.Name)
	}
	switch s.Type {
	case TypeWebhook:
		if s.KeyFile == "" {
			bad(at+".keyFile", "missing: a webhook is signed with the HMAC-SHA256 key in this file")
		}
	case TypeSlack:
		if s.KeyFile != "" {
			bad(at+".keyFile", "not taken by type slack: Slack's incoming webhooks are not signed")
		}
		if s.TokenFile != "" {
			bad(at+".tokenFile", "not taken by type slack: the URL is its credential")
		}
	case "":
		bad(at+".type", "missing: webhook or slack")
	default:
		bad(at+".type", "%q is not a sink type: webhook or slack", s.Type)
	}
	if s.URLFile == "" {
		bad(at+".urlFile", "missing: the file that holds the URL (never the URL itself)")
	}
	kinds := map[Kind]bool{}
	for j, k := range s.Events {
		switch {
		case !k.valid():
			bad(fmt.Sprintf("%s.events[%d]", at, j), "%q is not an event kind: %s", k, kindList())
		case kinds[k]:
			bad(fmt.Sprintf("%s.events[%d]", at, j), "%q is listed twice", k)
		}
		kinds[k] = true
	}
	if s.Timeout != 0 && (s.Timeout < 100*time.Millisecond || s.Timeout > time.Minute) {
		bad(at+".timeout", "%s is not between 100ms and 1m", s.Timeout)
	}
}

// settings are c's values with the defaults filled in.
type settings struct {
	after       int
	window      time.Duration
	giveUpAfter time.Duration
}

func (c *Config) settings() settings {
	s := settings{after: c.Digest.After, window: c.Digest.Window, giveUpAfter: c.GiveUpAfter}
	if s.after == 0 {
		s.after = DefaultDigestAfter
	}
	if s.window == 0 {
		s.window = DefaultDigestWindow
	}
	if s.giveUpAfter == 0 {
		s.giveUpAfter = DefaultGiveUpAfter
	}
	return s
}
