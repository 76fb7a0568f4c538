package simulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// BareTest makes the four calls of a connection test against the instance
// URL (a simulator's, with the default credentials) with plain net/http and no
// checks: the floor that benchmarks of dynconn's test compare with.
func BareTest(hc *http.Client, instance string) error {
	resp, err := hc.Get(instance + "/api/data/v9.2/")
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	form := url.Values{"client_id": {ClientID}, "client_secret": {ClientSecret},
		"scope": {instance + "/.default"}, "grant_type": {"client_credentials"}}
	resp, err = hc.Post(instance+"/"+TenantID+"/oauth2/v2.0/token", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.AccessToken == "" {
		return fmt.Errorf("token: %v", err)
	}
	for _, path := range []string{"/api/data/v9.2/WhoAmI",
		"/api/data/v9.2/systemusers(" + UserID + ")?$select=fullname,isdisabled&$expand=systemuserroles_association($select=name,roleid)"} {
		req, _ := http.NewRequest(http.MethodGet, instance+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	return nil
}
