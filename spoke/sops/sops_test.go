package sops

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/getsops/sops/v3"
	sopsaes "github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/pgp"
	"github.com/getsops/sops/v3/shamir"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	sigsyaml "sigs.k8s.io/yaml"
)

// The fixtures are encrypted in the test by sops' own encryption code (the test, not
// the agent, links all of sops), so they are what the sops CLI writes.

const secretYAML = `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: apps
  labels:
    tier: backend
type: Opaque
stringData:
  password: s3cr3t
  url: postgres://db:5432
data:
  token: dG9rZW4=
`

type recipients struct {
	age []string
	pgp []*openpgp.Entity
	dir string
	// services are master keys of key services (Vault, KMS), set up by the test.
	services []keys.MasterKey
}

// encrypt encrypts plain as `sops --encrypt` does, with one key group per element of
// groups (more than one turns on Shamir secret sharing).
func encrypt(t *testing.T, plain string, regex string, macOnlyEncrypted bool, groups ...recipients) []byte {
	t.Helper()
	store := sopsyaml.NewStore(&config.YAMLStoreConfig{})
	branches, err := store.LoadPlainFile([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	var keyGroups []sops.KeyGroup
	for _, g := range groups {
		var group sops.KeyGroup
		for _, r := range g.age {
			k, err := sopsage.MasterKeyFromRecipient(r)
			if err != nil {
				t.Fatal(err)
			}
			group = append(group, k)
		}
		for _, e := range g.pgp {
			ring := filepath.Join(t.TempDir(), "pubring.gpg")
			var buf bytes.Buffer
			if err := e.Serialize(&buf); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(ring, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			k := pgp.NewMasterKeyFromFingerprint(strings.ToUpper(fingerprint(e)))
			pgp.PubRing(ring).ApplyToMasterKey(k)
			group = append(group, keys.MasterKey(k))
		}
		group = append(group, g.services...)
		keyGroups = append(keyGroups, group)
	}
	tree := sops.Tree{Branches: branches, Metadata: sops.Metadata{
		KeyGroups: keyGroups, EncryptedRegex: regex, MACOnlyEncrypted: macOnlyEncrypted, Version: "3.13.3",
	}}
	// The data key is made and shared out as sops does, but handed to the master keys
	// directly: sops' local key service would rebuild the OpenPGP key from its
	// fingerprint alone and lose the test's keyring.
	dataKey := make([]byte, 32)
	if _, err := rand.Read(dataKey); err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{dataKey}
	if len(keyGroups) > 1 {
		tree.Metadata.ShamirThreshold = len(keyGroups)
		if parts, err = shamir.Split(dataKey, len(keyGroups), len(keyGroups)); err != nil {
			t.Fatal(err)
		}
	}
	for i, group := range keyGroups {
		for _, k := range group {
			if err := k.Encrypt(parts[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	// As `sops --encrypt` does (cmd/sops/common.EncryptTree, which links more of sops
	// than this test needs): values and MAC, then the MAC bound to lastmodified.
	cipher := sopsaes.NewCipher()
	mac, err := tree.Encrypt(dataKey, cipher)
	if err != nil {
		t.Fatal(err)
	}
	tree.Metadata.LastModified = time.Now().UTC()
	tree.Metadata.MessageAuthenticationCode, err = cipher.Encrypt(mac, dataKey, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil {
		t.Fatal(err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func fingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(bytesToHex(e.PrimaryKey.Fingerprint))
}

func bytesToHex(b []byte) string {
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func newAge(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func newPGP(t *testing.T) (*openpgp.Entity, []byte) {
	t.Helper()
	e, err := openpgp.NewEntity("flotilla test", "", "test@flotilla.dev", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SerializePrivate(w, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return e, buf.Bytes()
}

func parseKeys(t *testing.T, data map[string]string) *Keys {
	t.Helper()
	m := map[string][]byte{}
	for k, v := range data {
		m[k] = []byte(v)
	}
	k, err := ParseKeys(m)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func toMap(t *testing.T, doc []byte) map[string]interface{} {
	t.Helper()
	out := map[string]interface{}{}
	if err := sigsyaml.Unmarshal(doc, &out); err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	return out
}

func TestDecrypt(t *testing.T) {
	ageID, otherAge := newAge(t), newAge(t)
	pgpEntity, pgpArmored := newPGP(t)
	_, otherPGP := newPGP(t)
	shareA, shareB := newAge(t), newAge(t)

	plain := toMap(t, []byte(secretYAML))
	allTypes := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: typed\nstringData:\n  s: text\n  num: \"42\"\nextra:\n  i: 7\n  f: 1.5\n  b: true\n  list:\n  - one\n  - 2\n"

	tests := []struct {
		name    string
		doc     []byte
		keys    map[string]string
		want    map[string]interface{}
		wantErr string
	}{
		{
			name: "age, data and stringData encrypted",
			doc:  encrypt(t, secretYAML, "^(data|stringData)$", false, recipients{age: []string{ageID.Recipient().String()}}),
			keys: map[string]string{"flux.agekey": "# a comment\n" + ageID.String() + "\n"},
			want: plain,
		},
		{
			name: "OpenPGP",
			doc:  encrypt(t, secretYAML, "^(data|stringData)$", false, recipients{pgp: []*openpgp.Entity{pgpEntity}}),
			keys: map[string]string{"key.asc": string(pgpArmored)},
			want: plain,
		},
		{
			name: "age or OpenPGP, the Secret holding only the OpenPGP key",
			doc: encrypt(t, secretYAML, "^(data|stringData)$", false,
				recipients{age: []string{otherAge.Recipient().String()}, pgp: []*openpgp.Entity{pgpEntity}}),
			keys: map[string]string{"key.asc": string(pgpArmored), "other.agekey": ageID.String()},
			want: plain,
		},
		{
			name: "every value encrypted, types kept",
			doc:  encrypt(t, allTypes, "", false, recipients{age: []string{ageID.Recipient().String()}}),
			keys: map[string]string{"k.agekey": ageID.String()},
			want: toMap(t, []byte(allTypes)),
		},
		{
			name: "MAC over encrypted values only",
			doc:  encrypt(t, secretYAML, "^(data|stringData)$", true, recipients{age: []string{ageID.Recipient().String()}}),
			keys: map[string]string{"k.agekey": ageID.String()},
			want: plain,
		},
		{
			name: "Shamir: two key groups, both needed",
			doc: encrypt(t, secretYAML, "^(data|stringData)$", false,
				recipients{age: []string{shareA.Recipient().String()}}, recipients{age: []string{shareB.Recipient().String()}}),
			keys: map[string]string{"a.agekey": shareA.String(), "b.agekey": shareB.String()},
			want: plain,
		},
		{
			name: "Shamir with one part missing",
			doc: encrypt(t, secretYAML, "^(data|stringData)$", false,
				recipients{age: []string{shareA.Recipient().String()}}, recipients{age: []string{shareB.Recipient().String()}}),
			keys:    map[string]string{"a.agekey": shareA.String()},
			wantErr: "cannot decrypt the data key",
		},
		{
			name:    "wrong age key",
			doc:     encrypt(t, secretYAML, "^(data|stringData)$", false, recipients{age: []string{ageID.Recipient().String()}}),
			keys:    map[string]string{"k.agekey": otherAge.String()},
			wantErr: "it is encrypted for age " + ageID.Recipient().String(),
		},
		{
			name:    "wrong OpenPGP key",
			doc:     encrypt(t, secretYAML, "^(data|stringData)$", false, recipients{pgp: []*openpgp.Entity{pgpEntity}}),
			keys:    map[string]string{"k.asc": string(otherPGP)},
			wantErr: "OpenPGP " + fingerprint(pgpEntity),
		},
		{
			name: "an unencrypted value changed after encryption",
			doc: bytes.Replace(encrypt(t, secretYAML, "^(data|stringData)$", false, recipients{age: []string{ageID.Recipient().String()}}),
				[]byte("tier: backend"), []byte("tier: frontend"), 1),
			keys:    map[string]string{"k.agekey": ageID.String()},
			wantErr: "MAC mismatch",
		},
		{
			name:    "no keys",
			doc:     encrypt(t, secretYAML, "^(data|stringData)$", false, recipients{age: []string{ageID.Recipient().String()}}),
			keys:    map[string]string{"unrelated": "x"},
			wantErr: "no age or OpenPGP key",
		},
		{
			name:    "not encrypted",
			doc:     []byte(secretYAML),
			keys:    map[string]string{"k.agekey": ageID.String()},
			wantErr: "no sops metadata",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantErr == "" && !bytes.Contains(tt.doc, []byte("ENC[AES256_GCM")) {
				t.Fatalf("the fixture is not encrypted:\n%s", tt.doc)
			}
			out, err := parseKeys(t, tt.keys).DecryptYAML(tt.doc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, toMap(t, out)); diff != "" {
				t.Fatalf("decrypted (-want +got):\n%s\n%s", diff, out)
			}
		})
	}
}

// TestSameAsSops checks the decryption against sops' own, on the same file.
func TestSameAsSops(t *testing.T) {
	id := newAge(t)
	doc := encrypt(t, secretYAML, "^(data|stringData)$", false, recipients{age: []string{id.Recipient().String()}})
	t.Setenv(sopsage.SopsAgeKeyEnv, id.String())
	want := sopsDecrypt(t, doc)
	got, err := parseKeys(t, map[string]string{"k.agekey": id.String()}).DecryptYAML(doc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(toMap(t, want), toMap(t, got)); diff != "" {
		t.Fatalf("(-sops +ours):\n%s", diff)
	}
}

// sopsDecrypt decrypts as `sops --decrypt` does, with the age key in the environment.
func sopsDecrypt(t *testing.T, doc []byte) []byte {
	t.Helper()
	store := sopsyaml.NewStore(&config.YAMLStoreConfig{})
	tree, err := store.LoadEncryptedFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tree.Metadata.GetDataKey()
	if err != nil {
		t.Fatalf("sops cannot decrypt the data key: %v", err)
	}
	cipher := sopsaes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format(time.RFC3339))
	if err != nil || stored != mac {
		t.Fatalf("sops: MAC %v, want %v (%v)", stored, mac, err)
	}
	out, err := store.EmitPlainFile(tree.Branches)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReorderedDocument documents why the agent decrypts the artifact's own text: the
// MAC covers values in document order, which a parsed object does not keep.
func TestReorderedDocument(t *testing.T) {
	id := newAge(t)
	doc := encrypt(t, secretYAML, "^(data|stringData)$", false, recipients{age: []string{id.Recipient().String()}})
	sorted, err := sigsyaml.Marshal(toMap(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	_, err = parseKeys(t, map[string]string{"k.agekey": id.String()}).DecryptYAML(sorted)
	if err == nil || !strings.Contains(err.Error(), "MAC mismatch") {
		t.Fatalf("a re-sorted document: error %v, want a MAC mismatch", err)
	}
}

func TestIsEncrypted(t *testing.T) {
	id := newAge(t)
	enc := &unstructured.Unstructured{Object: toMap(t, encrypt(t, secretYAML, "^(data|stringData)$", false, recipients{age: []string{id.Recipient().String()}}))}
	if !IsEncrypted(enc) {
		t.Fatal("an encrypted Secret is not detected")
	}
	if IsEncrypted(&unstructured.Unstructured{Object: toMap(t, []byte(secretYAML))}) {
		t.Fatal("a plain Secret is taken for encrypted")
	}
	cm := enc.DeepCopy()
	cm.SetKind("ConfigMap")
	if IsEncrypted(cm) {
		t.Fatal("only Secrets are decrypted")
	}
}

func TestParseKeys(t *testing.T) {
	if _, err := ParseKeys(map[string][]byte{"bad.agekey": []byte("AGE-SECRET-KEY-NOPE")}); err == nil || !strings.Contains(err.Error(), "bad.agekey") {
		t.Fatalf("a bad age key: %v", err)
	}
	if _, err := ParseKeys(map[string][]byte{"bad.asc": []byte("not armored")}); err == nil || !strings.Contains(err.Error(), "bad.asc") {
		t.Fatalf("a bad OpenPGP key: %v", err)
	}
	k, err := ParseKeys(map[string][]byte{"README": []byte("ignored")})
	if err != nil || !k.Empty() {
		t.Fatalf("unrelated entries: %v, empty=%v", err, k.Empty())
	}
}
