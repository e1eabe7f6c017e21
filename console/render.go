package console

// pageData is what the page template renders.
type pageData struct {
	Title string
	S     status
}

// status is the part of the engine's status JSON (canary.Status, redacted)
// the page shows. The console decodes the admin API's JSON rather than
// importing the engine.
type status struct {
	PlanVersion int    `json:"plan_version"`
	PlanError   string `json:"plan_error"`
	Plan        struct {
		CanaryPercent float64 `json:"canary_percent"`
		KillSwitch    bool    `json:"kill_switch"`
		Tenants       struct {
			Canary []string `json:"canary"`
			Stable []string `json:"stable"`
		} `json:"tenants"`
	} `json:"plan"`
	PlanStore *struct {
		Source  string `json:"source"`
		Version int64  `json:"version"`
		Author  string `json:"author"`
		Note    string `json:"note"`
		Error   string `json:"error"`
	} `json:"plan_store"`
	KillSwitch struct {
		On      bool     `json:"on"`
		Reason  string   `json:"reason"`
		Sources []string `json:"sources"`
	} `json:"kill_switch"`
	Guard struct {
		Enabled bool   `json:"enabled"`
		Source  string `json:"source"`
		Window  string `json:"window"`
		Tripped bool   `json:"tripped"`
		Trip    *struct {
			Rule    string `json:"rule"`
			Summary string `json:"summary"`
		} `json:"trip"`
		Stable figures `json:"stable"`
		Canary figures `json:"canary"`
	} `json:"guard"`
	Fleet *struct {
		On      bool   `json:"on"`
		Actor   string `json:"actor"`
		Reason  string `json:"reason"`
		Error   string `json:"error"`
		Pending bool   `json:"pending"`
	} `json:"fleet"`
	UntrustedOverrides uint64 `json:"untrusted_overrides"`
}

type figures struct {
	Requests    uint64  `json:"requests"`
	Failures    uint64  `json:"failures"`
	FailureRate float64 `json:"failure_rate"`
	P95Millis   float64 `json:"p95_ms"`
}
