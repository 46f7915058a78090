package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/buildinfo"
)

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print drawbridge's version and VCS revision",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			version, revision := buildinfo.Read()
			fmt.Fprintf(a.stdout, "drawbridge %s (revision %s, %s)%s\n", version, revision, runtime.Version(), buildFlavour)
			return nil
		},
	}
}
