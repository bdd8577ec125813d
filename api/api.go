// Package api is the wire contract of kmsd, shared by the server and the
// public client package: route paths, query parameter names and the exact
// bodies that the BigDL KMS API (the compatibility API that BigDL PPML's
// Scala and Python clients speak) returns.
//
// # API maturity
//
// The BigDL part is frozen: it reproduces an existing protocol byte for
// byte. Anything under /v1 may still grow, but never changes meaning.
package api

import "fmt"

// DefaultPort is the HTTPS port of BigDL's KMS frontend, kept by kmsd.
const DefaultPort = 9876

// BigDL routes. Names follow the path, e.g. POST PathUser + name.
const (
	PathUser       = "/user/"       // POST /user/{userName}?token=T
	PathPrimaryKey = "/primaryKey/" // POST /primaryKey/{name}?user=U&token=T
	PathDataKey    = "/dataKey/"    // POST and GET /dataKey/{name}?user=U&token=T&primaryKeyName=P
	PathHealthz    = "/healthz"
	PathReadyz     = "/readyz"
	PathMetrics    = "/metrics"
)

// BigDL query parameter names.
const (
	ParamToken          = "token"
	ParamUser           = "user"
	ParamPrimaryKeyName = "primaryKeyName"
)

// DataKeyLen is the size of a BigDL data key in bytes; GET /dataKey returns
// its standard base64 encoding (24 characters) as the whole body.
const DataKeyLen = 16

// Welcome is the body of "/", as BigDL's frontend prints it.
const Welcome = "welcome to BigDL KMS Frontend\n\n" +
	"create a user like: " + UsageUser + "\n" +
	"get a primary key like: " + UsagePrimaryKey + "\n" +
	"get a data key like: " + UsageDataKeyCreate + "\n" +
	"get the data key like: " + UsageDataKeyGet + "\n"

// Usage lines, appended to BigDL-style error messages.
const (
	UsageUser          = "POST /user/{userName}?token=a_token_string_for_the_user"
	UsagePrimaryKey    = "POST /primaryKey/{primaryKeyName}?user=your_username&&token=your_token"
	UsageDataKeyCreate = "POST /dataKey/{dataKeyName}?primaryKeyName=the_primary_key_name&&user=your_username&&token=your_token"
	UsageDataKeyGet    = "GET /dataKey/{dataKeyName}?primaryKeyName=the_primary_key_name&&user=your_username&&token=your_token"
)

// UserCreated is the success body of POST /user/{name}.
func UserCreated(name string) string { return fmt.Sprintf("user [%s] is created successfully!", name) }

// PrimaryKeyCreated is the success body of POST /primaryKey/{name}.
func PrimaryKeyCreated(name string) string {
	return fmt.Sprintf("primaryKey [%s] is generated successfully!", name)
}

// DataKeyCreated is the success body of POST /dataKey/{name}.
func DataKeyCreated(name string) string {
	return fmt.Sprintf("dataKey [%s] is generated successfully!", name)
}

// Error codes carried in the X-Kms-Error header of every BigDL-route error
// response (the body stays BigDL's plain text) and in the "code" field of
// native JSON errors. Codes are API; messages are not.
const (
	CodeNotFound     = "not_found"
	CodeExists       = "already_exists"
	CodeInvalid      = "invalid"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeThrottled    = "throttled"
	CodeTooLarge     = "too_large"
	CodeDecrypt      = "decrypt_failed"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal"
)

// HeaderError names the response header that carries the error code.
const HeaderError = "X-Kms-Error"
