package kubetest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/yaml"
)

// InstallCRD creates the CustomResourceDefinition in file (YAML, as
// deploy/ ships it) unless it exists, and waits until the API server
// serves it.
func (c *Cluster) InstallCRD(ctx context.Context, file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	body, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var meta struct {
		Metadata struct{ Name string } `json:"metadata"`
	}
	if err := json.Unmarshal(body, &meta); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	const path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
	rc := c.Client.Discovery().RESTClient()
	err = rc.Post().AbsPath(path).SetHeader("Content-Type", "application/json").Body(body).Do(ctx).Error()
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the CRD of %s: %w", file, err)
	}
	return Eventually(ctx, 30*time.Second, func(ctx context.Context) (bool, error) {
		got, err := rc.Get().AbsPath(path + "/" + meta.Metadata.Name).Do(ctx).Raw()
		if err != nil {
			return false, nil
		}
		var crd struct {
			Status struct {
				Conditions []struct{ Type, Status string } `json:"conditions"`
			} `json:"status"`
		}
		if json.Unmarshal(got, &crd) != nil {
			return false, nil
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == "Established" && cond.Status == "True" {
				return true, nil
			}
		}
		return false, nil
	})
}
