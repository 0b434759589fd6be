package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	fleetv1 "github.com/flotilla-dev/flotilla/api/fleet/v1alpha1"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/hub/signing"
)

// defaultSystemNamespace is where the hub keeps its signing keys (hub/manager's default).
const defaultSystemNamespace = fleetv1.SystemNamespace

func newKeysCommand(g *globals) *cobra.Command {
	var systemNS string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List, rotate and retire the hub's artifact signing keys",
		Long: `The hub signs every artifact with its active key; agents trust every key in the
hub's keyring. "rotate" adds a key and makes it the active one, while the old keys
keep verifying what they signed; "retire" removes an old key once nothing needs it.
Agents learn of each change from a trust bundle signed by keys they already trust.`,
	}
	cmd.PersistentFlags().StringVar(&systemNS, "system-namespace", defaultSystemNamespace, "the hub's system namespace")
	cmd.AddCommand(newKeysListCommand(g, &systemNS), newKeysRotateCommand(g, &systemNS), newKeysRetireCommand(g, &systemNS))
	return cmd
}

func newKeysListCommand(g *globals, ns *string) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the signing keys, the active one and what each alone still signs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			st, err := signing.Read(ctx, c, *ns)
			if err != nil {
				return fmt.Errorf("reading the signing keys: %w", err)
			}
			t := newTable(g.out, "ID", "ACTIVE", "ONLY-SIGNER-OF")
			for _, id := range st.IDs() {
				only, err := signing.SignedOnlyBy(ctx, c, st, id)
				if err != nil {
					return err
				}
				active := ""
				if id == st.Active {
					active = "*"
				}
				t.row(id, active, strconv.Itoa(len(only))+" assignment(s)")
			}
			if err := t.flush(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(g.out, "trust bundle sequence %d\n", st.Sequence)
			return err
		},
	}
}

func newKeysRotateCommand(g *globals, ns *string) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate",
		Short: "Add a new signing key and make it the active one; the old keys stay trusted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			id, err := signing.Rotate(ctx, c, *ns)
			if err != nil {
				return fmt.Errorf("rotating: %w", err)
			}
			_, err = fmt.Fprintf(g.out, "key %s is now the active signing key; the old keys verify until retired\n", id)
			return err
		},
	}
}

func newKeysRetireCommand(g *globals, ns *string) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "retire ID",
		Short: "Remove an old signing key; agents stop trusting it",
		Long: `Remove an old signing key. The active key cannot be retired. While an Assignment
is still signed by this key alone (the hub re-signs an Assignment when it next
reconciles its deployment; a suspended one keeps its old signature), retiring is
refused: those Assignments would fail verification on their clusters. --force
retires anyway.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			id := args[0]
			st, err := signing.Read(ctx, c, *ns)
			if err != nil {
				return fmt.Errorf("reading the signing keys: %w", err)
			}
			if id == st.Active {
				return fmt.Errorf("key %s: %w", id, signing.ErrActiveKey)
			}
			if !force {
				only, err := signing.SignedOnlyBy(ctx, c, st, id)
				if err != nil {
					return err
				}
				if len(only) > 0 {
					return fmt.Errorf("key %s alone signs %d Assignment(s), which would fail verification: %s (reconcile their deployments, or use --force)",
						id, len(only), strings.Join(only[:min(len(only), 10)], ", "))
				}
			}
			if err := signing.Retire(ctx, c, *ns, id); err != nil {
				if errors.Is(err, signing.ErrUnknownKey) || errors.Is(err, signing.ErrActiveKey) || errors.Is(err, signing.ErrLastKey) {
					return fmt.Errorf("key %s: %w", id, err)
				}
				return fmt.Errorf("retiring %s: %w", id, err)
			}
			_, err = fmt.Fprintf(g.out, "key %s retired\n", id)
			return err
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "retire even when Assignments are still signed by this key alone")
	return cmd
}
