package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_drawbridge", "zsh": "#compdef drawbridge", "fish": "complete -c drawbridge"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"completion", shell}, &out, &errb, func(string) string { return "" }); code != 0 || !strings.Contains(out.String(), want) {
			t.Errorf("completion %s: exit %d, stderr %q, output lacks %q", shell, code, errb.String(), want)
		}
	}
}
