package smserver

import (
	"fmt"
	"net/http"
)

// Error codes the server answers with. All but the last three are modelled
// by the SDK, which returns them as the typed errors of
// github.com/aws/aws-sdk-go-v2/service/secretsmanager/types; the others come
// back as a smithy.GenericAPIError with that code, as they do from AWS.
const (
	CodeResourceNotFound     = "ResourceNotFoundException"
	CodeResourceExists       = "ResourceExistsException"
	CodeInvalidParameter     = "InvalidParameterException"
	CodeInvalidRequest       = "InvalidRequestException"
	CodeInvalidNextToken     = "InvalidNextTokenException"
	CodeLimitExceeded        = "LimitExceededException"
	CodeInternalServiceError = "InternalServiceError"

	CodeValidation       = "ValidationException"
	CodeSerialization    = "SerializationException"
	CodeUnknownOperation = "UnknownOperationException"
)

// APIError is an error as Secrets Manager reports it: a code, which the SDK
// maps to its typed error, and a message. Pass one to Server.Fail to make
// the server answer a call with it.
type APIError struct {
	// Code is the error's type, such as CodeResourceNotFound.
	Code string
	// Message is the human-readable text; it never holds a secret value.
	Message string
	// StatusCode is the HTTP status to answer with; zero means 400, or 500
	// for CodeInternalServiceError.
	StatusCode int
}

// Error implements error.
func (e *APIError) Error() string { return e.Code + ": " + e.Message }

func (e *APIError) status() int {
	switch {
	case e.StatusCode != 0:
		return e.StatusCode
	case e.Code == CodeInternalServiceError:
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

func errorf(code, format string, args ...any) *APIError {
	return &APIError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// The messages below are the ones AWS answers with, where known, so that a
// test that prints one reads as it would against AWS.

func errSecretNotFound() *APIError {
	return errorf(CodeResourceNotFound, "Secrets Manager can't find the specified secret.")
}

func errMarkedForDeletion() *APIError {
	return errorf(CodeInvalidRequest, "You can't perform this operation on the secret because it was marked for deletion.")
}
