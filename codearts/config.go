package codearts

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	cbregion "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/codeartsbuild/v3/region"
	"go.uber.org/zap"
)

// Defaults applied by NewClient to zero Config fields.
const (
	DefaultRegion   = "cn-north-4"
	DefaultTimeout  = 10 * time.Second
	DefaultMaxConns = 64
)

// Config configures a Client. The zero value is usable: every field has a
// default.
type Config struct {
	// Region is the region of requests that name none. Default "cn-north-4".
	Region string

	// Endpoint, when set, replaces the regional endpoint for every allowed
	// region, e.g. "http://127.0.0.1:8081" for the simulator. It must be an
	// absolute http or https URL. Zero: the SDK's endpoint for each region
	// (also overridable with the SDK's HUAWEICLOUD_SDK_REGION_CODEARTSBUILD_*
	// variables).
	Endpoint string

	// Regions is the set of regions a request may name. Region is always
	// allowed. Zero: only Region. Without Endpoint each must be a region the
	// SDK knows for CodeArts Build.
	Regions []string

	// ProjectID is sent as X-Project-Id. Zero: Credentials.ProjectID, and if
	// that is empty too the SDK resolves it through IAM when a region's
	// client is first built (not when Endpoint is set: then none is sent).
	ProjectID string

	// Timeout bounds each call, connection included. Default 10s; zero means
	// the default, negative is invalid.
	Timeout time.Duration

	// MaxConns sizes the connection pool to the caller's concurrency: at
	// least this many keep-alive connections stay idle per host. Default 64;
	// zero means the default.
	MaxConns int

	// Credentials sign the requests. Zero: LoadCredentials at NewClient.
	Credentials Credentials

	// Logger receives debug lines about client setup and info lines about
	// credential changes, never secrets. Nil: no logging.
	Logger *zap.Logger
}

// withDefaults returns cfg with zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return cfg
}

// Validate reports the first invalid field by name. Zero fields are valid
// (they take their defaults).
func (cfg Config) Validate() error {
	if cfg.Timeout < 0 {
		return fmt.Errorf("codearts: Config.Timeout must not be negative, got %s", cfg.Timeout)
	}
	if cfg.MaxConns < 0 {
		return fmt.Errorf("codearts: Config.MaxConns must not be negative, got %d", cfg.MaxConns)
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("codearts: Config.Endpoint must be an absolute http(s) URL, got %q", cfg.Endpoint)
		}
	}
	region := cfg.Region
	if region == "" {
		region = DefaultRegion
	}
	if _, err := cfg.endpoint(region); err != nil {
		return fmt.Errorf("codearts: Config.Region: %w", err)
	}
	for i, r := range cfg.Regions {
		if _, err := cfg.endpoint(r); err != nil {
			return fmt.Errorf("codearts: Config.Regions[%d]: %w", i, err)
		}
	}
	if !cfg.Credentials.IsZero() {
		if err := cfg.Credentials.Validate(); err != nil {
			return fmt.Errorf("codearts: Config.Credentials: %w", err)
		}
	}
	return nil
}

// endpoint resolves the endpoint of one region.
func (cfg Config) endpoint(region string) (string, error) {
	if region == "" {
		return "", fmt.Errorf("empty region: %w", ErrUnknownRegion)
	}
	if cfg.Endpoint != "" {
		return cfg.Endpoint, nil
	}
	r, err := cbregion.SafeValueOf(region)
	if err != nil || r == nil || len(r.Endpoints) == 0 {
		return "", fmt.Errorf("region %q: %w", region, ErrUnknownRegion)
	}
	ep := r.Endpoints[0]
	if !strings.HasPrefix(ep, "http") {
		ep = "https://" + ep // as the SDK's client builder does
	}
	return ep, nil
}
