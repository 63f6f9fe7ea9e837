package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
)

type userRow struct {
	ID           int64 `gorm:"primaryKey"`
	Email        string
	EmailKey     string
	Name         string
	Role         string
	PasswordHash string
	CreatedAt    time.Time
	TokenVersion int64
}

func (userRow) TableName() string { return "users" }

func (r *userRow) columns() []column {
	return []column{{"id", &r.ID}, {"email", &r.Email}, {"email_key", &r.EmailKey}, {"name", &r.Name},
		{"role", &r.Role}, {"password_hash", &r.PasswordHash}, {"created_at", &r.CreatedAt}, {"token_version", &r.TokenVersion}}
}

func (r userRow) toUser() User {
	return userReadRow{r.ID, r.Email, r.Name, r.Role, r.CreatedAt, r.TokenVersion}.toUser()
}

// userReadRow is the columns of a users row that a User holds: a read of users by ID (a
// page's merchants, the loader's batch) has no use for the password's hash or the email's
// key, some 100 bytes a row to send and scan.
type userReadRow struct {
	ID           int64
	Email        string
	Name         string
	Role         string
	CreatedAt    time.Time
	TokenVersion int64
}

func (userReadRow) TableName() string { return "users" }

func (r *userReadRow) columns() []column {
	return []column{{"id", &r.ID}, {"email", &r.Email}, {"name", &r.Name}, {"role", &r.Role},
		{"created_at", &r.CreatedAt}, {"token_version", &r.TokenVersion}}
}

func (r userReadRow) toUser() User {
	return User{ID: r.ID, Name: r.Name, Email: r.Email, Role: Role(r.Role), CreatedAt: r.CreatedAt, TokenVersion: r.TokenVersion}
}

// NewUser is an account to create.
type NewUser struct {
	Email    string
	Name     string
	Password string
	Role     Role
}

// CreateUser signs up a CUSTOMER or MERCHANT. It returns INVALID errors for bad input
// (ADMIN included) and EMAIL_TAKEN when the address is in use, in any letter case.
func (s *Store) CreateUser(ctx context.Context, in NewUser) (User, error) {
	var v validator
	v.email(in.Email, "email")
	v.name(in.Name, "name")
	v.password(in.Password, "password")
	if in.Role != RoleCustomer && in.Role != RoleMerchant {
		v.add("must be CUSTOMER or MERCHANT", "role")
	}
	if err := v.errs.err(); err != nil {
		return User{}, err
	}
	return s.insertUser(ctx, in)
}

func (s *Store) insertUser(ctx context.Context, in NewUser) (User, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(in.Password), s.passwordCost)
	if err != nil {
		return User{}, translate("create user", err)
	}
	row := userRow{
		Email: in.Email, EmailKey: emailKey(in.Email), Name: in.Name, Role: string(in.Role),
		PasswordHash: string(hash), CreatedAt: s.now(),
	}
	if err := s.db.WithContext(ctx).Create(&row).Error; err != nil {
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return User{}, newError(CodeEmailTaken, "this email address is already in use", "email")
		}
		return User{}, translate("create user", err)
	}
	s.wrote(ctx, row.ID)
	return row.toUser(), nil
}

// dummyHashes holds, by bcrypt cost, a hash compared against when no account matches.
var dummyHashes sync.Map

// dummyHash returns a hash of the store's own cost, so a failed sign-in takes as long whether
// or not the email exists (a hash of another cost would tell them apart by timing).
func (s *Store) dummyHash() []byte {
	if h, ok := dummyHashes.Load(s.passwordCost); ok {
		return h.([]byte)
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("not a real password"), s.passwordCost)
	dummyHashes.Store(s.passwordCost, h)
	return h
}

// Authenticate returns the user with this email and password, or INVALID_CREDENTIALS.
func (s *Store) Authenticate(ctx context.Context, email, password string) (User, error) {
	var row userRow
	err := s.db.WithContext(ctx).Where("email_key = ?", emailKey(email)).Take(&row).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return User{}, translate("authenticate", err)
	}
	hash := []byte(row.PasswordHash)
	if row.ID == 0 {
		hash = s.dummyHash()
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || row.ID == 0 {
		return User{}, newError(CodeInvalidCredentials, "email or password is wrong")
	}
	return row.toUser(), nil
}

// EnsureAdmin creates an ADMIN with this email and password, or makes the existing account
// with this email an ADMIN with this password.
func (s *Store) EnsureAdmin(ctx context.Context, email, password string) (User, error) {
	var v validator
	v.email(email, "ADMIN_EMAIL")
	v.password(password, "ADMIN_PASSWORD")
	if err := v.errs.err(); err != nil {
		return User{}, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), s.passwordCost)
	if err != nil {
		return User{}, translate("ensure admin", err)
	}
	var row userRow
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Where("email_key = ?", emailKey(email)).Take(&row).Error
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			row = userRow{Email: email, EmailKey: emailKey(email), Name: "Administrator",
				Role: string(RoleAdmin), PasswordHash: string(hash), CreatedAt: s.now()}
			return tx.Create(&row).Error
		case err != nil:
			return err
		}
		changes := map[string]any{"role": string(RoleAdmin), "password_hash": string(hash)}
		if bcrypt.CompareHashAndPassword([]byte(row.PasswordHash), []byte(password)) != nil {
			// A reset ends the tokens issued before it; a restart with the same password
			// (every process of the service at each deploy) ends none.
			row.TokenVersion++
			changes["token_version"], changes["tokens_revoked_at"] = row.TokenVersion, s.now()
		}
		row.Role, row.PasswordHash = string(RoleAdmin), string(hash)
		return tx.Model(&row).Updates(changes).Error
	})
	if err != nil {
		return User{}, translate("ensure admin", err)
	}
	s.invalidateUsers(ctx, row.ID)
	return row.toUser(), nil
}

// ChangePassword sets the viewer's password to next once current is theirs, and ends every
// token issued before: it returns the user with their new TokenVersion, INVALID_CREDENTIALS
// on currentPassword when current is wrong, and INVALID on newPassword for a bad one.
func (s *Store) ChangePassword(ctx context.Context, viewer Viewer, current, next string) (User, error) {
	if err := checkSignedIn(viewer); err != nil {
		return User{}, err
	}
	var v validator
	v.password(next, "newPassword")
	if err := v.errs.err(); err != nil {
		return User{}, err
	}
	var row userRow
	if err := s.db.WithContext(ctx).Take(&row, viewer.UserID).Error; err != nil {
		return User{}, translate("change password", err)
	}
	if bcrypt.CompareHashAndPassword([]byte(row.PasswordHash), []byte(current)) != nil {
		return User{}, newError(CodeInvalidCredentials, "the current password is wrong", "currentPassword")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(next), s.passwordCost)
	if err != nil {
		return User{}, translate("change password", err)
	}
	now := s.now()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Counted in the database, so two changes at once both move the version on.
		if err := tx.Model(&userRow{}).Where("id = ?", row.ID).Updates(map[string]any{
			"password_hash": string(hash), "token_version": gorm.Expr("token_version + 1"), "tokens_revoked_at": now,
		}).Error; err != nil {
			return err
		}
		return tx.Take(&row, row.ID).Error
	})
	if err != nil {
		return User{}, translate("change password", err)
	}
	s.invalidateUsers(ctx, row.ID)
	s.wrote(ctx, row.ID)
	return row.toUser(), nil
}

// Revocation says that the tokens of a user older than Version were revoked, at At.
type Revocation struct {
	UserID, Version int64
	At              time.Time
}

// TokenRevocations returns the revocations made after since (all of them for the zero time).
func (s *Store) TokenRevocations(ctx context.Context, since time.Time) ([]Revocation, error) {
	var rows []struct {
		ID              int64
		TokenVersion    int64
		TokensRevokedAt time.Time
	}
	err := s.db.WithContext(ctx).Model(&userRow{}).Select("id, token_version, tokens_revoked_at").
		Where("tokens_revoked_at IS NOT NULL AND tokens_revoked_at > ?", since).Scan(&rows).Error
	if err != nil {
		return nil, translate("find token revocations", err)
	}
	out := make([]Revocation, len(rows))
	for i, r := range rows {
		out[i] = Revocation{UserID: r.ID, Version: r.TokenVersion, At: r.TokensRevokedAt}
	}
	return out, nil
}

// FindUsersByIDs returns the users with these IDs, in no particular order, through the
// cache when there is one; unknown IDs are left out.
func (s *Store) FindUsersByIDs(ctx context.Context, ids []int64) ([]User, error) {
	return readThrough(ctx, s, userCodec, ids, (*Store).loadUsers)
}

func (s *Store) loadUsers(ctx context.Context, ids []int64) ([]User, error) {
	return findAll(s.fills(ctx).Where("id IN ?", ids), "find users", userReadRow.toUser)
}

// CountUsers returns how many accounts exist.
func (s *Store) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&userRow{}).Count(&n).Error
	return n, translate("count users", err)
}
