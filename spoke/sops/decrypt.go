package sops

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	sopsage "github.com/getsops/sops/v3/age"
	sopslogging "github.com/getsops/sops/v3/logging"
	"github.com/getsops/sops/v3/shamir"
	"github.com/sirupsen/logrus"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func init() {
	// sops' key sources log every attempt at Info, without saying which object it
	// was for; the caller reports failures with that context instead.
	sopslogging.SetLevel(logrus.WarnLevel)
}

// MetadataKey is the top-level key under which SOPS keeps its metadata.
const MetadataKey = "sops"

// IsEncrypted reports whether an object is a Secret encrypted by SOPS: it carries a
// top-level "sops" map with a MAC.
func IsEncrypted(u *unstructured.Unstructured) bool {
	if u.GetKind() != "Secret" || u.GroupVersionKind().Group != "" {
		return false
	}
	m, ok := u.Object[MetadataKey].(map[string]interface{})
	if !ok {
		return false
	}
	_, ok = m["mac"]
	return ok
}

// metadata is the part of the "sops" map that decryption needs.
type metadata struct {
	keyGroup                `yaml:",inline"`
	KeyGroups               []keyGroup `yaml:"key_groups"`
	ShamirThreshold         int        `yaml:"shamir_threshold"`
	LastModified            string     `yaml:"lastmodified"`
	MAC                     string     `yaml:"mac"`
	UnencryptedSuffix       string     `yaml:"unencrypted_suffix"`
	EncryptedSuffix         string     `yaml:"encrypted_suffix"`
	UnencryptedRegex        string     `yaml:"unencrypted_regex"`
	EncryptedRegex          string     `yaml:"encrypted_regex"`
	UnencryptedCommentRegex string     `yaml:"unencrypted_comment_regex"`
	EncryptedCommentRegex   string     `yaml:"encrypted_comment_regex"`
	MACOnlyEncrypted        bool       `yaml:"mac_only_encrypted"`
	Version                 string     `yaml:"version"`

	encRe, unencRe *regexp.Regexp
}

type keyGroup struct {
	Age []struct {
		Recipient string `yaml:"recipient"`
		Enc       string `yaml:"enc"`
	} `yaml:"age"`
	PGP []struct {
		Fingerprint string `yaml:"fp"`
		Enc         string `yaml:"enc"`
	} `yaml:"pgp"`
	KMS []struct {
		ARN     string             `yaml:"arn"`
		Role    string             `yaml:"role"`
		Context map[string]*string `yaml:"context"`
		Enc     string             `yaml:"enc"`
	} `yaml:"kms"`
	GCPKMS []struct {
		ResourceID string `yaml:"resource_id"`
		Enc        string `yaml:"enc"`
	} `yaml:"gcp_kms"`
	AzKV []struct {
		VaultURL string `yaml:"vault_url"`
		Name     string `yaml:"name"`
		Version  string `yaml:"version"`
		Enc      string `yaml:"enc"`
	} `yaml:"azure_kv"`
	Vault []struct {
		VaultAddress string `yaml:"vault_address"`
		EnginePath   string `yaml:"engine_path"`
		KeyName      string `yaml:"key_name"`
		Enc          string `yaml:"enc"`
	} `yaml:"hc_vault"`
	// HuaweiCloud KMS keys are only counted, to say why a file cannot be decrypted.
	HCKMS []yaml.Node `yaml:"hckms"`
}

// serviceKeys lists the group's keys that key services hold, in the order sops
// tries them.
func (g keyGroup) serviceKeys() []ServiceKey {
	var out []ServiceKey
	for _, k := range g.KMS {
		out = append(out, ServiceKey{Service: AWSKMS, ARN: k.ARN, Role: k.Role, Context: k.Context, Enc: k.Enc})
	}
	for _, k := range g.GCPKMS {
		out = append(out, ServiceKey{Service: GCPKMS, ResourceID: k.ResourceID, Enc: k.Enc})
	}
	for _, k := range g.AzKV {
		out = append(out, ServiceKey{Service: AzureKV, VaultURL: k.VaultURL, Name: k.Name, Version: k.Version, Enc: k.Enc})
	}
	for _, k := range g.Vault {
		out = append(out, ServiceKey{Service: Vault, VaultAddress: k.VaultAddress, EnginePath: k.EnginePath, KeyName: k.KeyName, Enc: k.Enc})
	}
	return out
}

// DecryptYAML decrypts one SOPS-encrypted YAML or JSON document and returns it as
// YAML, without its "sops" metadata. The MAC is checked: a document changed after
// encryption, or decrypted with the wrong key, is an error.
//
// The document must be the one SOPS wrote, in its order: the MAC covers the values
// in document order, so a document re-serialised with sorted keys does not verify.
func (k *Keys) DecryptYAML(doc []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(doc)).Decode(&root); err != nil {
		return nil, fmt.Errorf("parsing document: %w", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("the document is not a map")
	}
	top := root.Content[0]
	var m *metadata
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value != MetadataKey {
			continue
		}
		m = &metadata{}
		if err := top.Content[i+1].Decode(m); err != nil {
			return nil, fmt.Errorf("reading sops metadata: %w", err)
		}
		top.Content = append(top.Content[:i:i], top.Content[i+2:]...)
		break
	}
	if m == nil {
		return nil, errors.New("the document has no sops metadata")
	}
	if err := m.compile(); err != nil {
		return nil, err
	}
	if k.Empty() {
		return nil, errors.New("no age or OpenPGP key, nor key service credentials, to decrypt with")
	}
	dataKey, err := k.dataKey(m)
	if err != nil {
		return nil, err
	}

	w := &walker{meta: m, key: dataKey, hash: sha512.New()}
	if m.MACOnlyEncrypted {
		w.hash.Write(macOnlyEncryptedPrefix)
	}
	if err := w.walk(top, nil); err != nil {
		return nil, err
	}
	if err := w.verify(); err != nil {
		return nil, err
	}

	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// macOnlyEncryptedPrefix starts the MAC of files encrypted with mac_only_encrypted, so
// that such a MAC never equals one over all values. It is sha256("sops"), a constant
// of the SOPS format.
var macOnlyEncryptedPrefix = []byte{0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47,
	0xbe, 0x0b, 0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69}

func (m *metadata) compile() error {
	if m.MAC == "" || m.LastModified == "" {
		return errors.New("sops metadata has no mac or lastmodified")
	}
	// Which values are encrypted then depends on comments, which a build drops.
	if m.UnencryptedCommentRegex != "" || m.EncryptedCommentRegex != "" {
		return errors.New("files encrypted with encrypted_comment_regex or unencrypted_comment_regex are not supported")
	}
	var err error
	if m.EncryptedRegex != "" {
		if m.encRe, err = regexp.Compile(m.EncryptedRegex); err != nil {
			return fmt.Errorf("sops encrypted_regex: %w", err)
		}
	}
	if m.UnencryptedRegex != "" {
		if m.unencRe, err = regexp.Compile(m.UnencryptedRegex); err != nil {
			return fmt.Errorf("sops unencrypted_regex: %w", err)
		}
	}
	return nil
}

// encrypted tells whether the value at path was encrypted, by the file's rules: the
// later rule wins, as SOPS applies them.
func (m *metadata) encrypted(path []string) bool {
	any := func(f func(string) bool) bool {
		for _, p := range path {
			if f(p) {
				return true
			}
		}
		return false
	}
	enc := true
	if m.UnencryptedSuffix != "" && any(func(p string) bool { return strings.HasSuffix(p, m.UnencryptedSuffix) }) {
		enc = false
	}
	if m.EncryptedSuffix != "" {
		enc = any(func(p string) bool { return strings.HasSuffix(p, m.EncryptedSuffix) })
	}
	if m.unencRe != nil && any(m.unencRe.MatchString) {
		enc = false
	}
	if m.encRe != nil {
		enc = any(m.encRe.MatchString)
	}
	return enc
}

// dataKey recovers the file's data key: from any key of the only key group, or by
// combining the parts of enough groups when the file uses Shamir secret sharing.
func (k *Keys) dataKey(m *metadata) ([]byte, error) {
	groups := m.KeyGroups
	if len(groups) == 0 {
		groups = []keyGroup{m.keyGroup}
	}
	var parts [][]byte
	var errs []error
	for _, g := range groups {
		part, err := k.decryptGroup(g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(groups) == 1 {
			return part, nil
		}
		parts = append(parts, part)
	}
	threshold := m.ShamirThreshold
	if threshold <= 0 {
		threshold = len(groups)
	}
	if len(groups) > 1 && len(parts) >= threshold {
		key, err := shamir.Combine(parts)
		if err != nil {
			return nil, fmt.Errorf("combining the data key: %w", err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("cannot decrypt the data key: %w", errors.Join(errs...))
}

func (k *Keys) decryptGroup(g keyGroup) ([]byte, error) {
	var recipients []string
	if len(k.age) > 0 {
		for _, a := range g.Age {
			mk := &sopsage.MasterKey{Recipient: a.Recipient, EncryptedKey: a.Enc}
			// The identities are given explicitly, so sops never looks at the agent's
			// environment (SOPS_AGE_KEY…) for keys of its own.
			k.age.ApplyToMasterKey(mk)
			if key, err := mk.Decrypt(); err == nil {
				return key, nil
			}
		}
	}
	for _, a := range g.Age {
		recipients = append(recipients, "age "+a.Recipient)
	}
	for _, p := range g.PGP {
		if len(k.pgp) > 0 {
			if key, err := k.decryptPGP(p.Enc); err == nil {
				return key, nil
			}
		}
		recipients = append(recipients, "OpenPGP "+p.Fingerprint)
	}
	for _, sk := range g.serviceKeys() {
		key, err := k.decryptWithService(sk)
		if err == nil {
			return key, nil
		}
		recipients = append(recipients, fmt.Sprintf("%s (%v)", sk, err))
	}
	if len(g.HCKMS) > 0 {
		recipients = append(recipients, "HuaweiCloud KMS (not supported on the spoke)")
	}
	if len(recipients) == 0 {
		return nil, errors.New("a key group has no keys")
	}
	return nil, fmt.Errorf("no key in the decryption Secret opens it; it is encrypted for %s", strings.Join(recipients, ", "))
}

// decryptPGP opens an armored OpenPGP message with the in-memory keyring. sops' own
// pgp key source needs keyring files or a gpg binary; neither belongs on the agent.
func (k *Keys) decryptPGP(enc string) ([]byte, error) {
	block, err := armor.Decode(strings.NewReader(enc))
	if err != nil {
		return nil, err
	}
	md, err := openpgp.ReadMessage(block.Body, k.pgp, nil, nil)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(md.UnverifiedBody)
}

// walker decrypts the values of a document in order and hashes them for the MAC.
type walker struct {
	meta *metadata
	key  []byte
	hash hash.Hash
}

func (w *walker) walk(n *yaml.Node, path []string) error {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i]
			if key.Kind != yaml.ScalarNode {
				return fmt.Errorf("%s: only string keys are supported", strings.Join(path, "."))
			}
			if err := w.walk(n.Content[i+1], append(path[:len(path):len(path)], key.Value)); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if err := w.walk(c, path); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		return w.leaf(n, path)
	case yaml.AliasNode:
		return fmt.Errorf("%s: YAML aliases are not supported in encrypted files", strings.Join(path, "."))
	}
	return nil
}

func (w *walker) leaf(n *yaml.Node, path []string) error {
	if n.ShortTag() == "!!null" {
		return nil // SOPS neither encrypts nor hashes nulls
	}
	m := w.meta
	enc := m.encrypted(path)
	var v interface{}
	if enc {
		if n.ShortTag() != "!!str" {
			return fmt.Errorf("%s: expected an encrypted value, found %q", strings.Join(path, "."), n.Value)
		}
		if n.Value != "" { // SOPS leaves empty strings as they are
			var err error
			if v, err = decryptValue(n.Value, w.key, strings.Join(path, ":")+":"); err != nil {
				return fmt.Errorf("%s: %w", strings.Join(path, "."), err)
			}
			setScalar(n, v)
		} else {
			v = ""
		}
	} else if err := n.Decode(&v); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(path, "."), err)
	}
	if !m.MACOnlyEncrypted || enc {
		b, err := macBytes(v)
		if err != nil {
			return fmt.Errorf("%s: %w", strings.Join(path, "."), err)
		}
		w.hash.Write(b)
	}
	return nil
}

func (w *walker) verify() error {
	m := w.meta
	// SOPS authenticates the MAC with lastmodified as written back by Go's RFC 3339.
	t, err := time.Parse(time.RFC3339, m.LastModified)
	if err != nil {
		return fmt.Errorf("sops lastmodified: %w", err)
	}
	stored, err := decryptValue(m.MAC, w.key, t.Format(time.RFC3339))
	if err != nil {
		return fmt.Errorf("the MAC does not decrypt: %w", err)
	}
	s, ok := stored.(string)
	if !ok {
		return errors.New("the MAC is not a string")
	}
	got := fmt.Sprintf("%X", w.hash.Sum(nil))
	if subtle.ConstantTimeCompare([]byte(s), []byte(got)) != 1 {
		return errors.New("MAC mismatch: the document was changed after it was encrypted")
	}
	return nil
}

var encValue = regexp.MustCompile(`^ENC\[AES256_GCM,data:([^,]*),iv:([^,]+),tag:([^,]+),type:([a-z]+)\]$`)

// decryptValue opens one ENC[AES256_GCM,…] value; additional is the authenticated
// data SOPS bound it to (the value's path, or lastmodified for the MAC).
func decryptValue(s string, key []byte, additional string) (interface{}, error) {
	parts := encValue.FindStringSubmatch(s)
	if parts == nil {
		return nil, errors.New("the value is not in SOPS' encrypted format")
	}
	var raw [3][]byte
	for i := range raw {
		b, err := base64.StdEncoding.DecodeString(parts[i+1])
		if err != nil {
			return nil, fmt.Errorf("malformed encrypted value: %w", err)
		}
		raw[i] = b
	}
	data, iv, tag := raw[0], raw[1], raw[2]
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, iv, append(data, tag...), []byte(additional))
	if err != nil {
		return nil, errors.New("the value does not decrypt with the data key (wrong key, or the value was moved or altered)")
	}
	p := string(plain)
	switch parts[4] {
	case "str", "comment":
		return p, nil
	case "bytes":
		return plain, nil
	case "int":
		return strconv.Atoi(p)
	case "float":
		return strconv.ParseFloat(p, 64)
	case "bool":
		return strconv.ParseBool(p)
	case "time":
		var t time.Time
		err := t.UnmarshalText(plain)
		return t, err
	}
	return nil, fmt.Errorf("unknown encrypted value type %q", parts[4])
}

// macBytes is how SOPS feeds a value into the MAC.
func macBytes(v interface{}) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	case int:
		return []byte(strconv.Itoa(v)), nil
	case float64:
		return []byte(strconv.FormatFloat(v, 'f', -1, 64)), nil
	case bool:
		if v {
			return []byte("True"), nil
		}
		return []byte("False"), nil
	case time.Time:
		return v.MarshalText()
	}
	return nil, fmt.Errorf("a value of type %T cannot be authenticated", v)
}

// setScalar writes a decrypted value back into its node with the YAML type it had.
func setScalar(n *yaml.Node, v interface{}) {
	n.Style = 0
	switch v := v.(type) {
	case string:
		n.Tag, n.Value = "!!str", v
	case []byte:
		n.Tag, n.Value = "!!str", string(v)
	case int:
		n.Tag, n.Value = "!!int", strconv.Itoa(v)
	case float64:
		n.Tag, n.Value = "!!float", strconv.FormatFloat(v, 'g', -1, 64)
	case bool:
		n.Tag, n.Value = "!!bool", strconv.FormatBool(v)
	case time.Time:
		n.Tag, n.Value = "!!timestamp", v.Format(time.RFC3339Nano)
	}
}
