package dynamics

// Setup steps: the sections of the setup guide
// (shared/seed/dynamics-365-setup-guide.txt) a diagnosis sends the customer
// back to. The values are contract (design.md "Test result"): do not rename.
const (
	StepFindInstanceURL       = "find_instance_url"       // "Find your Instance URL"
	StepCreateAppRegistration = "create_app_registration" // "Create an Azure App Registration"
	StepAPIPermissions        = "api_permissions"         // its "API Permissions" tab
	StepClientSecret          = "client_secret"           // its "Certificates and Secrets" tab
	StepUploadCertificate     = "upload_certificate"      // that tab's Certificates part, for certificate connections
	StepCreateAPIUserRole     = "create_api_user_role"    // "Create an API User Role"
	StepCreateApplicationUser = "create_application_user" // "Create an Application User"
	StepAssignRole            = "assign_role"             // its last part, "Manage Roles"
)

// Diagnosis codes. They are stable, listed in openapi.yaml and documented in
// docs/diagnosis.md: clients may branch on them, so never rename one.
const (
	CodeInstanceURLInvalid         = "instance_url_invalid"
	CodeInstanceNotFound           = "instance_not_found"
	CodeInstanceUnreachable        = "instance_unreachable"
	CodeNotDataverse               = "not_dataverse"
	CodeAuthorityNotAllowed        = "authority_not_allowed"
	CodeDestinationNotAllowed      = "destination_not_allowed"
	CodeTenantMismatch             = "tenant_mismatch"
	CodeTenantNotFound             = "tenant_not_found"
	CodeTenantInOtherCloud         = "tenant_in_other_cloud"
	CodeAppNotFound                = "app_not_found"
	CodeAppServicePrincipalMissing = "app_service_principal_missing"
	CodeAppDisabled                = "app_disabled"
	CodeClientSecretInvalid        = "client_secret_invalid"
	CodeClientSecretExpired        = "client_secret_expired"
	CodeClientSecretMissing        = "client_secret_missing"
	CodeCertificateNotUploaded     = "certificate_not_uploaded"
	CodeCertificateExpired         = "certificate_expired"
	CodeDynamicsNotInTenant        = "dynamics_not_in_tenant"
	CodeScopeRejected              = "scope_rejected"
	CodeConditionalAccessBlocked   = "conditional_access_blocked"
	CodeTokenRejected              = "token_rejected"
	CodeDataverseAPIBlocked        = "dataverse_api_blocked"
	CodeApplicationUserMissing     = "application_user_missing"
	CodeApplicationUserDisabled    = "application_user_disabled"
	CodePrivilegeMissing           = "privilege_missing"
	CodeSecurityRoleMissing        = "security_role_missing"
	CodeAdminMode                  = "admin_mode"
	CodeEnvironmentDisabled        = "environment_disabled"
	CodeThrottled                  = "throttled"
	CodeMicrosoftUnavailable       = "microsoft_unavailable"
	CodeMicrosoftUnreachable       = "microsoft_unreachable"
	CodeMicrosoftTimeout           = "microsoft_timeout"
	CodeResponseTooLarge           = "response_too_large"
	CodeUnexpectedResponse         = "unexpected_response"
)

// Diagnosis explains one code: what went wrong, what the customer should do,
// and which step of the setup guide to revisit.
type Diagnosis struct {
	// Code is the stable snake_case identifier.
	Code string `json:"code"`
	// SetupStep is one of the Step constants, or "" (null in the API) when
	// the customer did nothing wrong: throttling, outages, our own refusals.
	SetupStep string `json:"setup_step"`
	// Message says what happened, in one sentence.
	Message string `json:"message"`
	// Hint tells the customer what to do, naming the guide's step.
	Hint string `json:"hint"`
}

// Step returns SetupStep as the API carries it: nil when there is none.
func (d Diagnosis) Step() *string {
	if d.SetupStep == "" {
		return nil
	}
	s := d.SetupStep
	return &s
}

// diagnoses is the one table of codes. Order: by the check that reports them.
var diagnoses = []Diagnosis{
	// instance_url
	{CodeInstanceURLInvalid, StepFindInstanceURL,
		"The instance URL is not a Dynamics 365 address dynconn can use.",
		"Open Dynamics 365 (for example the Sales Hub), copy the address bar up to the first slash — it looks like https://yourorg.crm.dynamics.com — and paste it into Resource URL, as in the guide's step \"Find your Instance URL\"."},

	// tenant_discovery
	{CodeInstanceNotFound, StepFindInstanceURL,
		"No Dynamics 365 environment exists at this address.",
		"Check the spelling of the instance URL: open Dynamics 365, copy the address bar up to the first slash and paste it again (guide step \"Find your Instance URL\"). If the environment was renamed or deleted, use its current address."},
	{CodeInstanceUnreachable, "",
		"The Dynamics 365 environment could not be reached or did not answer in time.",
		"Check that the instance URL opens in your browser. If it does, Microsoft is probably having a short outage: test again in a few minutes."},
	{CodeNotDataverse, StepFindInstanceURL,
		"The address answered, but not the way a Dynamics 365 environment does.",
		"Make sure you pasted the address of Dynamics 365 itself (https://yourorg.crm.dynamics.com), not a Power Apps, Azure portal or SharePoint link: see the guide's step \"Find your Instance URL\"."},
	{CodeAuthorityNotAllowed, StepFindInstanceURL,
		"The environment named a sign-in service that does not belong to its Microsoft cloud, so dynconn did not send it your credentials.",
		"Check that the instance URL is your organisation's real Dynamics 365 address (guide step \"Find your Instance URL\"). If it is, contact dynconn support and mention the time of this test."},
	{CodeDestinationNotAllowed, "",
		"dynconn refused to connect, because the address leads to a private or reserved network or redirected to another site.",
		"dynconn only talks to Microsoft's public Dynamics 365 and sign-in addresses. Check that the instance URL is your environment's public address; if it is, contact dynconn support and mention the time of this test."},
	{CodeTenantMismatch, StepCreateAppRegistration,
		"The Tenant ID you entered is not the directory this Dynamics 365 environment belongs to.",
		"Leave Tenant ID empty so dynconn finds it for you, or copy the Directory (tenant) ID again from your App Registration's Overview page in the Azure portal — the app must live in the same directory as Dynamics 365."},

	// token
	{CodeTenantNotFound, StepCreateAppRegistration,
		"Microsoft does not know the directory (tenant) this test signed in to.",
		"If you entered a Tenant ID, copy the Directory (tenant) ID again from your App Registration's Overview page in the Azure portal, or leave it empty so dynconn finds it from the instance URL."},
	{CodeTenantInOtherCloud, StepFindInstanceURL,
		"The directory belongs to a different Microsoft cloud (such as US Government or China) than the instance URL.",
		"Use the instance URL of an environment in the same Microsoft cloud as your Azure directory (guide step \"Find your Instance URL\"), and leave Tenant ID empty so dynconn finds the right one."},
	{CodeAppNotFound, StepCreateAppRegistration,
		"Microsoft found no application with this Client ID in the directory that owns your Dynamics 365 environment.",
		"Copy the Application (client) ID — not the Object ID — from your App Registration's Overview page and paste it into Client Id. Create the App Registration in the same Azure directory as Dynamics 365 (guide step \"Create an Azure App Registration\")."},
	{CodeAppServicePrincipalMissing, StepCreateAppRegistration,
		"The application is registered in another directory and is not set up in the one that owns Dynamics 365.",
		"Register the app in the Azure directory that owns your Dynamics 365 environment and keep \"Accounts in this organizational directory only\" selected (guide step \"Create an Azure App Registration\"), or ask an administrator of that directory to add the app."},
	{CodeAppDisabled, StepCreateAppRegistration,
		"The application is disabled in your Azure directory.",
		"In the Azure portal open Enterprise applications, find the app with your App Registration's name and, under Properties, set \"Enabled for users to sign-in?\" to Yes — or ask your Azure administrator to do it."},
	{CodeClientSecretInvalid, StepClientSecret,
		"Microsoft rejected the client secret.",
		"Paste the secret's Value, not its Secret ID. Azure shows the Value only once, right after you create the secret: if you no longer have it, open your App Registration's Certificates & secrets tab, create a new client secret and copy its Value (guide step \"Certificates and Secrets\")."},
	{CodeClientSecretExpired, StepClientSecret,
		"The client secret has expired.",
		"Open your App Registration's Certificates & secrets tab, create a new client secret, copy its Value and paste it into Client Secret. Azure no longer offers \"Never\": pick the longest expiry your organisation allows and note the date."},
	{CodeClientSecretMissing, StepClientSecret,
		"No client secret was sent to Microsoft.",
		"Paste the client secret's Value into Client Secret. If you no longer have it, create a new client secret on your App Registration's Certificates & secrets tab (guide step \"Certificates and Secrets\")."},
	{CodeCertificateNotUploaded, StepUploadCertificate,
		"Microsoft does not know the certificate dynconn signed in with: it is not uploaded to the app registration.",
		"Download this connection's certificate from dynconn (the .cer file), then in the Azure portal open your App Registration's Certificates & secrets tab, choose Certificates > Upload certificate and upload it. Check that the Thumbprint the portal shows equals the thumbprint dynconn shows for this connection."},
	{CodeCertificateExpired, StepUploadCertificate,
		"The connection's certificate has expired, so dynconn did not try to sign in with it.",
		"Renew it in dynconn: make a next certificate, upload it under Certificates & secrets > Certificates in your App Registration, test it and activate it. Then delete the expired certificate from the App Registration."},
	{CodeDynamicsNotInTenant, StepFindInstanceURL,
		"Dynamics 365 is not set up in the Azure directory this test signed in to.",
		"Check that the instance URL is your organisation's Dynamics 365 environment (guide step \"Find your Instance URL\") and that your App Registration lives in the same Azure directory; if you entered a Tenant ID, leave it empty so dynconn finds it."},
	{CodeScopeRejected, StepFindInstanceURL,
		"Microsoft's sign-in service did not accept the permission scope built from the instance URL.",
		"Check that the instance URL is exactly the address from your browser, https://yourorg.crm.dynamics.com (guide step \"Find your Instance URL\"). If it is, contact dynconn support with the trace ID below."},
	{CodeConditionalAccessBlocked, StepCreateAppRegistration,
		"A Conditional Access policy in your Azure directory stopped the application from signing in.",
		"Ask your Azure administrator to let this App Registration sign in from dynconn (Conditional Access for workload identities), then test again."},

	// whoami and security_role
	{CodeTokenRejected, StepCreateAppRegistration,
		"Dynamics 365 did not accept the sign-in token Microsoft issued for the application.",
		"Make sure the App Registration lives in the same Azure directory as the Dynamics 365 environment, and leave Tenant ID empty so dynconn uses the environment's own directory."},
	{CodeDataverseAPIBlocked, StepAPIPermissions,
		"Your organisation only lets approved applications use the Dynamics 365 API, and this one is not approved.",
		"Ask your Power Platform administrator to allow this Client ID to use the Dataverse API, and check that the App Registration has the Dynamics CRM user_impersonation permission (guide step \"API Permissions\")."},
	{CodeApplicationUserMissing, StepCreateApplicationUser,
		"The application signed in, but this Dynamics 365 environment has no Application User for it.",
		"In Dynamics 365 open Settings > Security > Users, switch the view to Application Users, click New and enter this Client ID as the Application ID (guide step \"Create an Application User\"). Do it in the environment of this instance URL."},
	{CodeApplicationUserDisabled, StepCreateApplicationUser,
		"The Application User for this application is disabled in Dynamics 365.",
		"In Dynamics 365 open Settings > Security > Users, switch the view to Application Users, open the user with this Application ID and enable it (guide step \"Create an Application User\")."},
	{CodePrivilegeMissing, StepCreateAPIUserRole,
		"The Application User's security role lacks a privilege dynconn needs.",
		"Make the role a copy of System Administrator: in Settings > Security > Security Roles select System Administrator, choose More Actions > Copy Role and name it API User (guide step \"Create an API User Role\"), then give that role to the Application User."},
	{CodeSecurityRoleMissing, StepAssignRole,
		"The Application User has no security role.",
		"Open the Application User (Settings > Security > Users, view Application Users), click Manage Roles and apply the API User role — the last part of the guide's step \"Create an Application User\"."},
	{CodeAdminMode, "",
		"The Dynamics 365 environment is in administration mode, so only administrators can use it.",
		"Nothing is wrong with your setup. Test again once your administrator turns administration mode off (Power Platform admin center > Environments > your environment > Settings)."},
	{CodeEnvironmentDisabled, StepFindInstanceURL,
		"This Dynamics 365 environment is disabled.",
		"Ask your administrator to enable the environment in the Power Platform admin center, or use the instance URL of an active environment (guide step \"Find your Instance URL\")."},

	// any step
	{CodeThrottled, "",
		"Microsoft is limiting how many requests this application may make right now.",
		"Nothing is wrong with your setup. Wait for the time Microsoft asked for (retry_after_seconds) and test again; if it keeps happening, other integrations may be sharing this Application User."},
	{CodeMicrosoftUnavailable, "",
		"Microsoft's service answered with a temporary error.",
		"Nothing is wrong with your setup. Test again in a few minutes; if it lasts, check Service health in the Microsoft 365 or Power Platform admin center."},
	{CodeMicrosoftUnreachable, "",
		"Microsoft's sign-in or Dynamics 365 service could not be reached.",
		"Nothing is wrong with your setup. Test again in a few minutes; if it lasts, contact dynconn support and mention the time of this test."},
	{CodeMicrosoftTimeout, "",
		"Microsoft did not answer in time.",
		"Nothing is wrong with your setup. Test again in a few minutes; if it lasts, contact dynconn support and mention the time of this test."},
	{CodeResponseTooLarge, "",
		"Microsoft's answer was larger than dynconn accepts.",
		"Test again; if it happens again, contact dynconn support and mention the time of this test."},
	{CodeUnexpectedResponse, "",
		"Microsoft gave an answer dynconn does not recognise.",
		"Test again; if it happens again, contact dynconn support and quote the details below (Microsoft's error, trace ID and correlation ID)."},
}

var diagnosisByCode = func() map[string]Diagnosis {
	m := make(map[string]Diagnosis, len(diagnoses))
	for _, d := range diagnoses {
		if _, dup := m[d.Code]; dup {
			panic("dynamics: duplicate diagnosis code " + d.Code)
		}
		m[d.Code] = d
	}
	return m
}()

// Lookup returns the diagnosis of code, and whether code is known.
func Lookup(code string) (Diagnosis, bool) {
	d, ok := diagnosisByCode[code]
	return d, ok
}

// diagnosis returns the table entry of a code that must exist.
func diagnosis(code string) Diagnosis {
	d, ok := Lookup(code)
	if !ok {
		panic("dynamics: unknown diagnosis code " + code)
	}
	return d
}
