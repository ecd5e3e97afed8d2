package smserver

import (
	"strconv"
	"time"
)

// The request and response bodies of the operations, with the member names
// of the Secrets Manager model. Requests are decoded strictly: a member that
// is not listed here is an error rather than silently ignored.

// epoch is a timestamp as awsJson1.1 writes it: seconds since the Unix
// epoch, as a JSON number with a fraction.
type epoch time.Time

func (e epoch) MarshalJSON() ([]byte, error) {
	ms := time.Time(e).UnixMilli()
	return strconv.AppendFloat(nil, float64(ms)/1000, 'f', 3, 64), nil
}

func (e epoch) IsZero() bool { return time.Time(e).IsZero() }

type tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type createSecretInput struct {
	Name               string
	ClientRequestToken string
	Description        *string
	KmsKeyId           string
	SecretString       *string
	SecretBinary       []byte
	Tags               []tag
	// The SDK always sends this member; it only matters with replicas,
	// which the server does not have.
	ForceOverwriteReplicaSecret bool
}

type createSecretOutput struct {
	ARN       string `json:"ARN"`
	Name      string `json:"Name"`
	VersionId string `json:"VersionId,omitempty"`
}

type putSecretValueInput struct {
	SecretId           string
	ClientRequestToken string
	SecretString       *string
	SecretBinary       []byte
	// nil when absent, which is not the same as an empty list.
	VersionStages []string
}

type putSecretValueOutput struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"Name"`
	VersionId     string   `json:"VersionId"`
	VersionStages []string `json:"VersionStages"`
}

type getSecretValueInput struct {
	SecretId     string
	VersionId    string
	VersionStage string
}

type getSecretValueOutput struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"Name"`
	VersionId     string   `json:"VersionId"`
	SecretString  *string  `json:"SecretString,omitempty"`
	SecretBinary  []byte   `json:"SecretBinary,omitempty"`
	VersionStages []string `json:"VersionStages"`
	CreatedDate   epoch    `json:"CreatedDate,omitzero"`
}

type secretIDInput struct {
	SecretId string
}

type describeSecretOutput struct {
	ARN                string              `json:"ARN"`
	Name               string              `json:"Name"`
	Description        string              `json:"Description,omitempty"`
	KmsKeyId           string              `json:"KmsKeyId,omitempty"`
	CreatedDate        epoch               `json:"CreatedDate,omitzero"`
	LastChangedDate    epoch               `json:"LastChangedDate,omitzero"`
	LastAccessedDate   epoch               `json:"LastAccessedDate,omitzero"`
	DeletedDate        epoch               `json:"DeletedDate,omitzero"`
	Tags               []tag               `json:"Tags,omitempty"`
	VersionIdsToStages map[string][]string `json:"VersionIdsToStages,omitempty"`
}

type listSecretVersionIdsInput struct {
	SecretId          string
	IncludeDeprecated bool
	MaxResults        *int32
	NextToken         string
}

type versionEntry struct {
	VersionId        string   `json:"VersionId"`
	VersionStages    []string `json:"VersionStages,omitempty"`
	CreatedDate      epoch    `json:"CreatedDate,omitzero"`
	LastAccessedDate epoch    `json:"LastAccessedDate,omitzero"`
}

type listSecretVersionIdsOutput struct {
	ARN       string         `json:"ARN"`
	Name      string         `json:"Name"`
	Versions  []versionEntry `json:"Versions"`
	NextToken string         `json:"NextToken,omitempty"`
}

type updateSecretVersionStageInput struct {
	SecretId            string
	VersionStage        string
	MoveToVersionId     string
	RemoveFromVersionId string
}

type arnNameOutput struct {
	ARN  string `json:"ARN,omitempty"`
	Name string `json:"Name,omitempty"`
}

type deleteSecretInput struct {
	SecretId                   string
	ForceDeleteWithoutRecovery *bool
	RecoveryWindowInDays       *int64
}

type deleteSecretOutput struct {
	ARN          string `json:"ARN,omitempty"`
	Name         string `json:"Name,omitempty"`
	DeletionDate epoch  `json:"DeletionDate,omitzero"`
}

type errorBody struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}
