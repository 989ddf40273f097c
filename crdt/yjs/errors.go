package yjs

import (
	"errors"
	"fmt"
)

// Errors returned by the engine. Decode failures wrap ErrMalformed in a
// *DecodeError; limit violations wrap ErrTooLarge.
var (
	// ErrMalformed: the input is not a well-formed Yjs update, state vector or
	// delete set (truncated, out-of-range integer, invalid UTF-8 or JSON,
	// unknown content or type ref, inconsistent clocks).
	ErrMalformed = errors.New("yjs: malformed input")
	// ErrTooLarge: the input or the document would exceed a Limits bound.
	ErrTooLarge = errors.New("yjs: limit exceeded")
	// ErrPendingFull: the update would leave more structs waiting for their
	// causal dependencies than Limits.MaxPendingStructs allows.
	ErrPendingFull = errors.New("yjs: pending buffer full")
	// ErrNotFound: a named root or position does not exist.
	ErrNotFound = errors.New("yjs: not found")
	// ErrWrongType: a root is used as a different type than it holds.
	ErrWrongType = errors.New("yjs: wrong type")
)

// DecodeError says where decoding failed. It wraps ErrMalformed or ErrTooLarge.
type DecodeError struct {
	Offset int    // byte offset in the input
	Field  string // what was being read
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("%v: %s at offset %d", e.Err, e.Field, e.Offset)
}

func (e *DecodeError) Unwrap() error { return e.Err }
