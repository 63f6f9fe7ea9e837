package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestTemplatesMatchPinnedGqlgen holds upstream/, the pristine copies of gqlgen's codegen
// templates that templates/ were made from, to the templates of the gqlgen go.mod pins. A
// gqlgen upgrade that changes one fails here naming it: diff upstream/NAME against gqlgen's
// new one, carry the change into templates/NAME, and copy the new one into upstream/ (see
// docs/executor.md).
func TestTemplatesMatchPinnedGqlgen(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}} {{.Dir}}", "github.com/99designs/gqlgen").Output()
	if err != nil {
		t.Fatalf("go list gqlgen: %v", err)
	}
	version, dir, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if dir == "" {
		t.Fatalf("gqlgen %s is not in the module cache: go mod download", version)
	}
	theirs := templateNames(t, filepath.Join(dir, "codegen"))
	pristine := templateNames(t, "upstream")
	ours := templateNames(t, "templates")
	if !slices.Equal(pristine, ours) {
		t.Fatalf("templates/ holds %v, upstream/ %v: each of ours needs its pristine copy", ours, pristine)
	}
	for _, name := range theirs {
		if !slices.Contains(pristine, name) {
			t.Errorf("gqlgen %s has a template %s that upstream/ lacks: the executor may need it (copy it into templates/ and upstream/)", version, name)
		}
	}
	for _, name := range pristine {
		want, err := os.ReadFile(filepath.Join(dir, "codegen", name))
		if err != nil {
			t.Errorf("gqlgen %s has no template %s any more: %v", version, name, err)
			continue
		}
		got, err := os.ReadFile(filepath.Join("upstream", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("gqlgen %s changed its template %s: diff upstream/%[2]s %s and carry the change into templates/%[2]s",
				version, name, filepath.Join(dir, "codegen", name))
		}
	}
}

func templateNames(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.gotpl"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no templates in %s: %v", dir, err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}
