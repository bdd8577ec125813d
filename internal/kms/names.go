package kms

// MaxNameLen is the longest user or key name accepted.
const MaxNameLen = 128

// ValidateName checks that s is a usable user or key name: 1 to MaxNameLen
// bytes of ASCII letters, digits, '.', '_' and '-', not starting with '.'.
// The rules keep names safe in URLs, logs, file paths and SQL identifiers'
// neighbourhood, and cover the UUIDs that PPMLContext generates.
// It returns an error wrapping ErrInvalid; what names the value (kind) is
// part of the message, the value itself is not echoed when it is too long.
func ValidateName(kind, s string) error {
	if s == "" {
		return Errorf(ErrInvalid, "%s is empty", kind)
	}
	if len(s) > MaxNameLen {
		return Errorf(ErrInvalid, "%s is longer than %d characters", kind, MaxNameLen)
	}
	if s[0] == '.' {
		return Errorf(ErrInvalid, "%s must not start with '.'", kind)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return Errorf(ErrInvalid, "%s may contain only letters, digits, '.', '_' and '-'", kind)
		}
	}
	return nil
}
