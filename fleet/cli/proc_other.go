//go:build !unix

package cli

import "errors"

func processRunning(int) bool { return false }

func isFlotilla(int) bool { return false }

func terminate(int) error { return errors.New("flotilla dev down needs a Unix system") }
