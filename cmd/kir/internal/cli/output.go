package cli

import (
	"encoding/json"
	"io"

	"sigs.k8s.io/yaml"
)

// printStructured writes v as indented JSON, or as YAML.
func printStructured(w io.Writer, format string, v any) error {
	if format == "yaml" {
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
