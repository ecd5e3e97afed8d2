package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"kir.dev/kir/cmd/kir/internal/catalog"
	"kir.dev/kir/playbooks"
)

const (
	flagStateDir     = "state-dir"
	flagPlaybooksDir = "playbooks-dir"
	flagPlaybook     = "playbook"
)

// playbookFlags say where playbooks and the run journal live.
func playbookFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagPlaybooksDir, Usage: "directory of playbooks (*.yaml) that add to or override the built-in ones", EnvVars: []string{"KIR_PLAYBOOKS_DIR"}},
		&cli.StringSliceFlag{Name: flagPlaybook, Usage: "playbook file that adds to or overrides the built-in ones and --playbooks-dir (repeatable)"},
		stateDirFlag(),
	}
}

func stateDirFlag() cli.Flag {
	return &cli.StringFlag{Name: flagStateDir, Usage: "where kir keeps its run journals (default $XDG_STATE_HOME/kir or ~/.local/state/kir)", EnvVars: []string{"KIR_STATE_DIR"}}
}

// library loads the built-in playbooks and the user's.
func library(c *cli.Context) (*playbooks.Library, error) {
	var dirs []string
	if d := c.String(flagPlaybooksDir); d != "" {
		dirs = append(dirs, d)
	}
	lib, err := playbooks.NewLibrary(catalog.Registry(), playbooks.Sources{Dirs: dirs, Files: c.StringSlice(flagPlaybook)})
	if err != nil {
		return nil, usageError{err}
	}
	return lib, nil
}

// stateDir is where kir keeps its state.
func stateDir(c *cli.Context) (string, error) {
	if d := c.String(flagStateDir); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "kir"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", usageError{errors.New("no home directory: give --state-dir or KIR_STATE_DIR")}
	}
	return filepath.Join(home, ".local", "state", "kir"), nil
}

// findPlaybook returns the named playbook of the library.
func findPlaybook(c *cli.Context, name string) (*playbooks.Entry, error) {
	lib, err := library(c)
	if err != nil {
		return nil, err
	}
	e, ok := lib.Get(name)
	if !ok {
		return nil, usageError{fmt.Errorf("no playbook named %s (have: %s)", name, strings.Join(lib.Names(), ", "))}
	}
	return e, nil
}

// newEngine returns the playbook engine with the run journal.
func newEngine(c *cli.Context) (*playbooks.Engine, error) {
	dir, err := stateDir(c)
	if err != nil {
		return nil, err
	}
	runs, err := playbooks.OpenRuns(filepath.Join(dir, "runs"))
	if err != nil {
		return nil, err
	}
	return &playbooks.Engine{
		Actions: catalog.Registry(), Runs: runs, Evidence: filepath.Join(dir, "evidence"),
		Version: Version, Observe: testHook(),
	}, nil
}

// runPlaybook runs the named playbook with params, prints the report and
// returns the command's error.
func runPlaybook(c *cli.Context, s *session, command, name string, params map[string]any) error {
	run, err := startPlaybook(c, s, name, params)
	if err != nil {
		return err
	}
	return s.report(c, command, run)
}

// startPlaybook runs the playbook name and returns its run.
func startPlaybook(c *cli.Context, s *session, name string, params map[string]any) (*playbooks.Run, error) {
	pb, err := findPlaybook(c, name)
	if err != nil {
		return nil, err
	}
	eng, err := newEngine(c)
	if err != nil {
		return nil, err
	}
	return eng.Start(c.Context, playbooks.Request{Playbook: pb.Playbook, Params: params, Env: s.env})
}

// report prints a run's report and returns the command's error.
func (s *session) report(c *cli.Context, command string, run *playbooks.Run) error {
	err := runError(run)
	if perr := printReport(c.App.Writer, s.format, reportOf(command, run)); perr != nil && err == nil {
		err = perr
	}
	return err
}
