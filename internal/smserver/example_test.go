package smserver_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"kir.dev/kir/internal/smserver"
)

// A test serves the server with httptest and points the real SDK client at
// it; any static credentials do.
func Example() {
	ts := httptest.NewServer(smserver.New())
	defer ts.Close()

	client := secretsmanager.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		BaseEndpoint: aws.String(ts.URL),
	})
	ctx := context.Background()
	if _, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("db/password"), SecretString: aws.String("old"),
	}); err != nil {
		panic(err)
	}
	put, err := client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String("db/password"), SecretString: aws.String("new"),
	})
	if err != nil {
		panic(err)
	}
	prev, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId: aws.String("db/password"), VersionStage: aws.String("AWSPREVIOUS"),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("new version:", put.VersionStages)
	fmt.Println("previous value:", aws.ToString(prev.SecretString), prev.VersionStages)
	// Output:
	// new version: [AWSCURRENT]
	// previous value: old [AWSPREVIOUS]
}
