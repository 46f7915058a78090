package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drawbridge/drawbridge/internal/audit/auditkey"
	"github.com/drawbridge/drawbridge/internal/audit/auditstore"
	"github.com/drawbridge/drawbridge/internal/client"
)

// auditCheckpointCmd is `drawbridge audit checkpoint`: the latest signed
// head, for shipping somewhere the database's writers cannot reach.
func (a *app) auditCheckpointCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Print the audit log's latest signed checkpoint (seq, hash, time, signature)",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cp, err := c.LatestAuditCheckpoint(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printData(cp)
			}
			fmt.Fprintf(a.stdout, "seq %d hash %s time %s key %s signature %s\n", cp.Seq, cp.Hash, cp.Time.Format("2006-01-02T15:04:05.999999Z07:00"), cp.KeyID, cp.Signature)
			return nil
		},
	}
}

// verifyCheckpoints checks the log against the signed checkpoints with
// the public key in pubFile (client.VerifyCheckpoints).
func (a *app) verifyCheckpoints(cmd *cobra.Command, c *client.Client, pubFile string, rep *auditstore.Report) error {
	pub, err := auditkey.ReadPublic(pubFile)
	if err != nil {
		return fmt.Errorf("--public-key: %w", err)
	}
	return c.VerifyCheckpoints(cmd.Context(), pub, rep)
}

// auditVerifyCmd is `drawbridge audit verify [--public-key FILE]`.
func (a *app) auditVerifyCmd() *cobra.Command {
	var pubKey string
	verify := &cobra.Command{
		Use:   "verify [--public-key FILE]",
		Short: "Verify the audit log's hash chain (and with --public-key its signed checkpoints); exits 1 if it is broken",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			rep, err := c.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			if pubKey != "" && rep.OK {
				if err := a.verifyCheckpoints(cmd, c, pubKey, &rep); err != nil {
					return err
				}
			}
			if a.json() {
				if err := a.printData(rep); err != nil {
					return err
				}
			}
			if !rep.OK {
				return errors.New(rep.Error)
			}
			if !a.json() {
				fmt.Fprintf(a.stdout, "audit log intact: %d records, head seq %d hash %s\n", rep.Records, rep.HeadSeq, rep.Hash)
				if rep.Checkpoints > 0 {
					fmt.Fprintf(a.stdout, "%d signed checkpoints verified, the latest at seq %d\n", rep.Checkpoints, rep.LatestCheckpoint)
				}
			}
			return nil
		},
	}
	verify.Flags().StringVar(&pubKey, "public-key", "", "the server's audit public key (the .pub file beside its audit key): also read the whole log and check it against every signed checkpoint")
	return verify
}
