// Command execgen is what `go generate ./...` runs in place of `gqlgen generate`: gqlgen's
// own generation (the models and the resolver stubs, as gqlgen.yml says), then the executor
// (exec.filename, graph/generated.go) rendered from templates/ instead of gqlgen's codegen
// templates. templates/ are gqlgen's own at the version go.mod pins (their pristine copies
// are in upstream/), changed where the executor's runtime (package graph/exec) is faster
// than gqlgen's; template.go says which fields and objects those changes apply to, and
// docs/executor.md how to upgrade gqlgen.
package main

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/config"
	"github.com/99designs/gqlgen/codegen/templates"
)

//go:embed templates/*.gotpl
var templateFS embed.FS

func main() {
	if err := generate(); err != nil {
		fmt.Fprintln(os.Stderr, "execgen:", err)
		os.Exit(1)
	}
}

func generate() error {
	cfg, err := config.LoadConfigFromDefaultLocations()
	if err != nil {
		return err
	}
	if cfg.Exec.Layout != config.ExecLayoutSingleFile || cfg.UseFunctionSyntaxForExecutionContext {
		return errors.New("the executor's templates are gqlgen's single-file layout with method syntax: set exec.layout: single-file in gqlgen.yml")
	}
	// gqlgen renders its own executor too, which render then replaces whole; gqlgen's build
	// of the packages would check that one, so `go vet ./...` checks ours instead.
	cfg.SkipValidation = true
	var exec executor
	if err := api.Generate(cfg, api.AddPlugin(&exec)); err != nil {
		return err
	}
	if exec.data == nil {
		return errors.New("gqlgen gave the executor no data")
	}
	return exec.render()
}

// executor is a gqlgen plugin that keeps the data gqlgen builds its executor from.
type executor struct{ data *codegen.Data }

func (*executor) Name() string { return "executor" }

func (e *executor) GenerateCode(data *codegen.Data) error {
	e.data = data
	return nil
}

// render writes the executor as gqlgen's generateSingleFile does, from our templates.
func (e *executor) render() error {
	tpl, err := fs.Sub(templateFS, "templates")
	if err != nil {
		return err
	}
	d := e.data
	return templates.Render(templates.Options{
		PackageName:     d.Config.Exec.Package,
		Filename:        d.Config.Exec.Filename,
		Data:            d,
		Funcs:           newShapes(d).funcs(),
		RegionTags:      true,
		GeneratedHeader: true,
		Packages:        d.Config.Packages,
		TemplateFS:      tpl,
		PruneOptions:    d.Config.GetPruneOptions(),
	})
}
