// Package dynamics talks to Microsoft on a connection's behalf: it parses and
// classifies instance URLs, discovers the Entra tenant from the instance's 401
// challenge, exchanges client credentials for a token, calls the Dataverse
// WhoAmI function, reads the application user's roles, and turns every failure
// into a diagnosis that names the step of the setup guide to revisit.
package dynamics
