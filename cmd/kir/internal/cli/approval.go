package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"kir.dev/kir/playbooks"
)

const flagYes = "yes"

// approvalOptions say who approves the steps that need approval
// (approval: required) of the runs a command starts or resumes: --yes, the
// person at the terminal, or nobody yet (the run is held).
type approvalOptions struct{ yes bool }

func (o *approvalOptions) flag(usage string) cli.Flag {
	return &cli.BoolFlag{Name: flagYes, Usage: usage, Destination: &o.yes}
}

// approvals is the Approvals of a run started at this terminal.
func (o *approvalOptions) approvals(c *cli.Context, s *session) playbooks.Approvals {
	return &terminalApprovals{yes: o.yes, by: approver(s.env.Actor), in: c.App.Reader, out: c.App.ErrWriter}
}

// terminalApprovals approves with --yes, asks at a terminal, and holds the
// run without one.
type terminalApprovals struct {
	yes bool
	by  string
	in  io.Reader
	out io.Writer
}

// The ways the command line decides (Decision.Via).
const (
	viaYes    = "cli --yes"
	viaPrompt = "cli prompt"
)

func (a *terminalApprovals) Decide(ctx context.Context, run *playbooks.Run, step string) (playbooks.Decision, error) {
	if a.yes {
		return playbooks.Decision{Verdict: playbooks.VerdictApproved, By: a.by, Via: viaYes}, nil
	}
	f, ok := a.in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return playbooks.Decision{Verdict: playbooks.VerdictPending, Reason: "no terminal to ask, and no --yes"}, nil
	}
	action := ""
	if sr := run.Step(step); sr != nil {
		action = " (" + sr.Action + ")"
	}
	fmt.Fprintf(a.out, "kir: step %s%s of run %s cannot be undone.\napprove step %s of run %s? [y/N] ", step, action, run.ID, step, run.ID)
	answer, err := readLine(ctx, f)
	if err != nil {
		return playbooks.Decision{}, err
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return playbooks.Decision{Verdict: playbooks.VerdictApproved, By: a.by, Via: viaPrompt}, nil
	}
	return playbooks.Decision{Verdict: playbooks.VerdictDenied, By: a.by, Via: viaPrompt, Reason: "answered no at the prompt"}, nil
}

// readLine reads one line from r, or returns ctx's error when it ends
// first (the read is then left to the process's exit).
func readLine(ctx context.Context, r io.Reader) (string, error) {
	got := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil && line == "" {
			errc <- fmt.Errorf("reading the answer: %w", err)
			return
		}
		got <- line
	}()
	select {
	case line := <-got:
		return line, nil
	case err := <-errc:
		return "", err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// approver names the person at the terminal: the identity the API server
// authenticated, and the OS user.
func approver(actor string) string {
	osUser := "unknown"
	if u, err := user.Current(); err == nil {
		osUser = u.Username
	}
	if actor == "" {
		return "OS user " + osUser
	}
	return actor + " (OS user " + osUser + ")"
}

// approveCommand is the command that approves a held run's step.
func approveCommand(run, step string) string {
	return "kir runs approve " + run + " --step " + step
}

// heldError is a run held before a step that needs approval.
type heldError struct{ run, step, reason string }

func (e heldError) Error() string {
	return fmt.Sprintf("held: step %s needs approval (%s); approve it with: %s", e.step, e.reason, approveCommand(e.run, e.step))
}

// deniedError is a run a person denied a step of.
type deniedError struct{ msg string }

func (e deniedError) Error() string { return e.msg }
