package main

import (
	"context"
	"fmt"
)

// applyDiscovered is the end of every `inventory sync CLOUD`: with print it
// writes the discovered document, else it applies it as the server's
// inventory and says what was read (summary of the server's counts).
func (a *app) applyDiscovered(ctx context.Context, doc []byte, print bool, summary func(counts map[string]int) string) error {
	if print {
		_, err := a.stdout.Write(append(doc, '\n'))
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	counts, err := c.ApplyInventory(ctx, doc)
	if err != nil {
		return err
	}
	if a.json() {
		return printJSON(a.stdout, counts)
	}
	_, err = fmt.Fprintln(a.stdout, summary(counts))
	return err
}
