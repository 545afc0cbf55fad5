package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// Output formats of -o/--output: a table for people, JSON and YAML for
// programs (the same object in both).
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

var outputFormats = []string{outputTable, outputJSON, outputYAML}

// outputFlags are -o/--output and its --json alias.
type outputFlags struct {
	format string
	json   bool
}

// addOutputFlags registers -o/--output (table|json|yaml, completed by the
// shell) and --json (the same as -o json, kept for scripts).
func addOutputFlags(cmd *cobra.Command, o *outputFlags) {
	fs := cmd.Flags()
	fs.StringVarP(&o.format, "output", "o", outputTable, "output format: "+strings.Join(outputFormats, ", "))
	fs.BoolVar(&o.json, "json", false, "the same as -o json")
}

// resolve returns the chosen format, or a usage error naming the flag.
func (o outputFlags) resolve() (string, error) {
	f := strings.ToLower(o.format)
	if o.json {
		if f != outputTable && f != outputJSON {
			return "", usageError(fmt.Errorf("output: --json and -o %s disagree", o.format))
		}
		return outputJSON, nil
	}
	for _, want := range outputFormats {
		if f == want {
			return f, nil
		}
	}
	return "", usageError(fmt.Errorf("output: %q is not one of %s", o.format, strings.Join(outputFormats, ", ")))
}

// writeStructured writes v as indented JSON or as YAML. The YAML is the
// JSON document (same keys, same order), so both read the same.
func writeStructured(w io.Writer, format string, v any) error {
	if format == outputYAML {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return err
		}
		blockStyle(&doc)
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(&doc); err != nil {
			return err
		}
		return enc.Close()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// blockStyle drops the JSON styles (flow mappings, quoted strings) the
// parser kept, so the encoder writes plain block YAML, quoting only what
// needs it.
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// usageErr is a command line that could not be understood: exit code 2.
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// useColor reports whether w may get ANSI colours: a terminal, and NO_COLOR
// (https://no-color.org) unset or empty. Pipes, files and CI logs get none.
func useColor(w io.Writer) bool {
	return os.Getenv("NO_COLOR") == "" && isTerminal(w)
}

// recordWriter writes a stream of records: JSON one per line (jq reads it
// as it comes), or YAML one document per record.
type recordWriter struct {
	w      io.Writer
	format string
}

func (r recordWriter) encode(v any) error {
	if r.format == outputYAML {
		if _, err := io.WriteString(r.w, "---\n"); err != nil {
			return err
		}
		return writeStructured(r.w, outputYAML, v)
	}
	return json.NewEncoder(r.w).Encode(v)
}
