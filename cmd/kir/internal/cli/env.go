package cli

import "os"

// envVars are the environment variables a flag reads.
func envVars(names ...string) []string { return names }

// getenv reads an environment variable.
func getenv(name string) string { return os.Getenv(name) }
