package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/ppmlkms/kms/client"
	"github.com/ppmlkms/kms/ppml"
	"github.com/ppmlkms/kms/stream"
)

// usageError is a mistake in how kmsctl was called: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &usageError{fmt.Sprintf(format, a...)}
}

// flagError turns a flag package error into a usage error, keeping
// flag.ErrHelp (-h) as is.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &usageError{err.Error()}
}

// integrityErrors are the errors of an input that is not an intact
// ciphertext (bad tag, tampered, truncated, malformed): exit code 7.
var integrityErrors = []error{ppml.ErrAuth, ppml.ErrFormat, ppml.ErrMixedKeys, stream.ErrAuth, stream.ErrFormat, client.ErrDecrypt}

// exitCode maps an error to kmsctl's documented exit codes.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, client.ErrNotFound):
		return exitNotFound
	case errors.Is(err, client.ErrExists), errors.Is(err, client.ErrConflict):
		// Both are HTTP 409; a proxy that drops the error code leaves
		// only the status, which the client reads as ErrExists.
		return exitExists
	case errors.Is(err, client.ErrDisabled):
		// Not an authentication failure: the credential is right, but
		// the key (or user) is switched off. Checked before ErrForbidden
		// although kmsd sends both with HTTP 403.
		return exitDisabled
	case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrForbidden), errors.Is(err, client.ErrThrottled):
		return exitAuth
	case errors.Is(err, client.ErrUnavailable):
		return exitUnavailable
	}
	for _, ie := range integrityErrors {
		if errors.Is(err, ie) {
			return exitIntegrity
		}
	}
	return exitFailure
}
