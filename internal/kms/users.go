package kms

import (
	"context"
	"errors"
)

// ListUsers returns every user (for admins); token hashes are cleared.
func (s *Service) ListUsers(ctx context.Context) ([]User, error) {
	users, err := s.store.ListUsers(ctx)
	for i := range users {
		users[i].TokenHash = ""
	}
	return users, err
}

// SetUserDisabled disables or re-enables a user. A disabled user's token
// is refused (the caller must also drop cached verifications).
func (s *Service) SetUserDisabled(ctx context.Context, name string, disabled bool) (User, error) {
	u, err := s.store.User(ctx, name)
	if err != nil {
		return User{}, s.result("set_user_disabled", "user", name, err)
	}
	u.Disabled = disabled
	if err := s.store.UpdateUser(ctx, u); err != nil {
		return User{}, s.result("set_user_disabled", "user", name, err)
	}
	u.TokenHash = ""
	return u, nil
}

// SetUserToken replaces a user's token hash (token rotation or
// revocation).
func (s *Service) SetUserToken(ctx context.Context, name, tokenHash string) error {
	u, err := s.store.User(ctx, name)
	if err != nil {
		return s.result("set_user_token", "user", name, err)
	}
	u.TokenHash = tokenHash
	return s.result("set_user_token", "user", name, s.store.UpdateUser(ctx, u))
}

// UserEnabled returns nil if the user exists and is enabled (for identities
// proven by a client certificate instead of a token), and otherwise an
// error wrapping ErrPermission or ErrDisabled.
func (s *Service) UserEnabled(ctx context.Context, name string) error {
	u, err := s.store.User(ctx, name)
	switch {
	case errors.Is(err, ErrNotFound):
		return Errorf(ErrPermission, "client certificate maps to user [%s], who does not exist", name)
	case err != nil:
		return err
	case u.Disabled:
		return Errorf(ErrDisabled, "user [%s] is disabled", name)
	}
	return nil
}
