package credentials

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// DockerConfigJSONKey is the entry of a Secret of type kubernetes.io/dockerconfigjson.
const DockerConfigJSONKey = ".dockerconfigjson"

// dockerConfig is the part of a Docker config file that names credentials.
type dockerConfig struct {
	Auths map[string]struct {
		Username      string `json:"username"`
		Password      string `json:"password"`
		Auth          string `json:"auth"`
		IdentityToken string `json:"identitytoken"`
	} `json:"auths"`
}

// dockerHubAliases are the names Docker clients write for Docker Hub.
var dockerHubAliases = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

// registryHost reduces a key of "auths" (host, host:port, https://host/v1/, …) to
// host[:port], lower case, Docker Hub's names to docker.io.
func registryHost(key string) string {
	h := strings.ToLower(strings.TrimSpace(key))
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	if dockerHubAliases[h] {
		return "docker.io"
	}
	return h
}

// dockerConfigFor returns the username and password that a .dockerconfigjson gives
// for host (host[:port] of the registry). Only an entry for that very host counts:
// credentials meant for one registry are never sent to another.
func dockerConfigFor(raw []byte, host string) (user, pass string, err error) {
	var cfg dockerConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return "", "", fmt.Errorf("%s is not a Docker config: %w", DockerConfigJSONKey, err)
	}
	want := registryHost(host)
	var seen []string
	for key, a := range cfg.Auths {
		h := registryHost(key)
		seen = append(seen, h)
		if h != want {
			continue
		}
		user, pass = a.Username, a.Password
		if a.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return "", "", fmt.Errorf("%s: the auth of %s is not base64", DockerConfigJSONKey, key)
			}
			var ok bool
			if user, pass, ok = strings.Cut(string(dec), ":"); !ok {
				return "", "", fmt.Errorf("%s: the auth of %s is not user:password", DockerConfigJSONKey, key)
			}
		}
		if a.IdentityToken != "" && user == "" {
			return "", "", fmt.Errorf("%s: the entry of %s holds an identity token, which the hub does not use; give a username and password", DockerConfigJSONKey, key)
		}
		if user == "" && pass == "" {
			return "", "", fmt.Errorf("%s: the entry of %s has no username and password", DockerConfigJSONKey, key)
		}
		return user, pass, nil
	}
	sort.Strings(seen)
	return "", "", fmt.Errorf("%s has no entry for registry %s (entries: %s)", DockerConfigJSONKey, want, strings.Join(seen, ", "))
}
