// Package pages serves the public pages a person reaches from an email,
// so that withdrawing is as easy as giving (GDPR art. 7(3)):
//
//	GET  /u/{token}  a confirmation page with one button (a GET never withdraws: mail scanners prefetch links)
//	POST /u/{token}  one-click unsubscribe, RFC 8058 (body List-Unsubscribe=One-Click, no cookie, no redirect): 200
//	GET  /p/{token}  the preference centre: a toggle per brand × channel × purpose the person has, and "every brand"
//	POST /p/{token}  its form (CSRF-protected)
//	GET  /c/{token}  the double opt-in confirmation page
//	POST /c/{token}  confirms the brand's pending requests
//
// Tokens are signed by package links; a forged, expired or
// other-purpose token, or one naming a subject that no longer exists,
// gets the same 404 page. Every page is server-rendered (html/template,
// no script), sets no cookie, loads nothing from elsewhere (a strict
// Content-Security-Policy), and shows the address masked (c•••@example.com).
// Texts come from one catalogue (catalogue.json), in English and French.
//
// What a person does becomes signals that are stored in the inbox under an
// internal source (SourceOneClick, SourcePreferences, SourceConfirm) and
// enqueued, exactly like a webhook: the worker reconciles them, records
// them in the ledger with their evidence (page, token id, wording version
// and hash, IP truncated to /24 or /48, user agent) and pushes withdrawals
// to every destination. A page answers only once its inbox row is
// committed (store first, then answer).
package pages

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/consentsync/consentsync/config"
	"github.com/consentsync/consentsync/consent"
	"github.com/consentsync/consentsync/links"
	"github.com/consentsync/consentsync/service"
	"github.com/consentsync/consentsync/store"
)

//go:embed templates/*.html
var templateFS embed.FS

// Service is what the pages need of the one service layer
// (service.Service).
type Service interface {
	Signer() (links.Signer, error)
	Page(ctx context.Context, subjectID int64, brand string) (*service.PageView, error)
}

var _ Service = (*service.Service)(nil)

// Inbox commits a page's submission before it is answered
// (store.GroupInbox).
type Inbox interface {
	InsertInbound(ctx context.Context, in store.Inbound) (int64, bool, error)
}

// Queue enqueues a stored submission's inbound task (jobs.Enqueuer).
type Queue interface {
	Inbound(ctx context.Context, id int64) error
}

// Handler serves the pages.
type Handler struct {
	cfg    config.Pages
	svc    Service
	inbox  Inbox
	queue  Queue
	log    *slog.Logger
	now    func() time.Time
	cat    *Catalogue
	tpl    *template.Template
	signer links.Signer
	ip     *limiters
	tok    *limiters
	cop    *http.CrossOriginProtection
	// requests is consentsync_pages_requests_total{page, outcome}.
	requests *prometheus.CounterVec
}

// New builds the pages' handler and registers its metric on reg
// (consentsync_pages_requests_total{page, outcome}; no personal data in
// labels). now is the clock (time.Now when nil). Errors: the signer's
// (service.ErrPagesDisabled, an empty secret), a broken catalogue or
// template, a metric already registered.
func New(cfg config.Pages, svc Service, inbox Inbox, q Queue, log *slog.Logger, reg prometheus.Registerer, now func() time.Time) (*Handler, error) {
	if now == nil {
		now = time.Now
	}
	sg, err := svc.Signer()
	if err != nil {
		return nil, err
	}
	cat, err := LoadCatalogue()
	if err != nil {
		return nil, err
	}
	tpl, err := template.New("pages").Funcs(template.FuncMap{
		"title": func(d pageData, t string) pageData { d.Title = t; return d },
	}).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("pages: templates: %w", err)
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "consentsync_pages_requests_total",
		Help: "Public page requests by page (unsubscribe, preferences, confirm) and outcome (shown, stored, duplicate, unchanged, csrf_refused, invalid_token, rate_limited, bad_request, forbidden, unavailable).",
	}, []string{"page", "outcome"})
	if reg != nil {
		if err := reg.Register(requests); err != nil {
			return nil, fmt.Errorf("pages: metrics: %w", err)
		}
	}
	return &Handler{cfg: cfg, svc: svc, inbox: inbox, queue: q, log: log, now: now, cat: cat, tpl: tpl, signer: sg,
		ip: newLimiters(cfg.IPPerMinute), tok: newLimiters(cfg.TokenPerMinute), cop: http.NewCrossOriginProtection(), requests: requests}, nil
}

// Register routes the pages on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle("GET /u/{token}", h.counted("unsubscribe", h.unsubscribeGet))
	mux.Handle("POST /u/{token}", h.counted("unsubscribe", h.unsubscribePost))
	mux.Handle("GET /p/{token}", h.counted("preferences", h.preferencesGet))
	mux.Handle("POST /p/{token}", h.counted("preferences", h.preferencesPost))
	mux.Handle("GET /c/{token}", h.counted("confirm", h.confirmGet))
	mux.Handle("POST /c/{token}", h.counted("confirm", h.confirmPost))
}

// outcomeKey carries a request's *string outcome in its context.
type outcomeKey struct{}

// setOutcome names what a request did (stored, duplicate, unchanged,
// csrf_refused) for consentsync_pages_requests_total.
func setOutcome(r *http.Request, o string) {
	if p, ok := r.Context().Value(outcomeKey{}).(*string); ok {
		*p = o
	}
}

// statusWriter remembers the status code written.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// counted counts each request of page by outcome: what the handler set,
// else by status (200 shown, 404 invalid_token, 429 rate_limited,
// 400/413 bad_request, 403 forbidden, 503 unavailable).
func (h *Handler) counted(page string, fn http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var out string
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		fn(sw, r.WithContext(context.WithValue(r.Context(), outcomeKey{}, &out)))
		if out == "" {
			switch sw.code {
			case http.StatusOK:
				out = "shown"
			case http.StatusNotFound:
				out = "invalid_token"
			case http.StatusTooManyRequests:
				out = "rate_limited"
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
				out = "bad_request"
			case http.StatusForbidden:
				out = "forbidden"
			default:
				out = "unavailable"
			}
		}
		h.requests.WithLabelValues(page, out).Inc()
	})
}

// request is one page request past its checks.
type request struct {
	claims links.Claims
	view   *service.PageView
	lang   string
	body   []byte
	ip     string
	data   pageData
}

// begin runs the checks every page request passes, in order: the
// client's rate limit, the body (POST, at most 16 KiB), the token (purpose
// p), the link's rate limit, the subject. It writes the answer and
// returns false when one fails.
func (h *Handler) begin(w http.ResponseWriter, r *http.Request, p links.Purpose) (*request, bool) {
	now := h.now()
	secure(w)
	addr := clientAddr(r, h.cfg.ClientIPHeader)
	rq := &request{ip: TruncateIP(addr)}
	rq.lang = h.cat.Lang(r, "")
	if !h.ip.allow(limitKey(addr), now) {
		h.message(w, r, rq, http.StatusTooManyRequests, "slow_title", "slow_body")
		return nil, false
	}
	if r.Method == http.MethodPost {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBody))
		if err != nil {
			h.message(w, r, rq, http.StatusRequestEntityTooLarge, "bad_title", "bad_body")
			return nil, false
		}
		rq.body = b
		if q, err := url.ParseQuery(string(b)); err == nil {
			rq.lang = h.cat.Lang(r, q.Get("lang"))
		}
	}
	c, err := h.signer.Verify(r.PathValue("token"), p, now)
	if err != nil {
		h.message(w, r, rq, http.StatusNotFound, "invalid_title", "invalid_body")
		return nil, false
	}
	if !h.tok.allow(c.ID, now) {
		h.message(w, r, rq, http.StatusTooManyRequests, "slow_title", "slow_body")
		return nil, false
	}
	v, err := h.svc.Page(r.Context(), c.SubjectID, c.Brand)
	if errors.Is(err, service.ErrUnknownSubject) {
		// The same answer as a forged token: a link's holder learns
		// nothing more about an erased person.
		h.message(w, r, rq, http.StatusNotFound, "invalid_title", "invalid_body")
		return nil, false
	}
	if err != nil {
		h.log.Error("page: subject view", "page", p.String(), "err", err)
		h.message(w, r, rq, http.StatusServiceUnavailable, "busy_title", "busy_body")
		return nil, false
	}
	rq.claims, rq.view = c, v
	rq.data = h.base(rq)
	return rq, true
}

// secure sets the headers every page answer carries: no caching (the URL
// is a credential), no referrer (it would leak the token), no framing, no
// sniffing, not indexed. The Content-Security-Policy is set by render.
func secure(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Robots-Tag", "noindex, nofollow")
}

// evidence is what every signal of a request keeps.
func (h *Handler) evidence(r *http.Request, rq *request, page, letter string) consent.Evidence {
	return consent.Evidence{
		EventID: rq.claims.ID, Event: page, FormID: page,
		PageURL: strings.TrimRight(h.cfg.PublicURL, "/") + "/" + letter + "/?lang=" + rq.lang,
		IP:      rq.ip, UserAgent: r.UserAgent(),
	}
}

// subject is the subject of a signal about channel: the link's subject,
// with the set's number for SMS and calls (consent.ConsentSubject gives
// such consent to the number, linked with the address).
func subject(v *service.PageView, ch consent.Channel) consent.Subject {
	s := consent.Subject{Email: v.Identifier.Email, Phone: v.Identifier.Phone}
	if (ch == consent.ChannelSMS || ch == consent.ChannelPhone) && s.Phone == "" {
		s.Phone = v.Phone
	}
	return s
}

// save commits sigs to the inbox under source (dedup: dedup) and
// enqueues them. false: Postgres refused, a 503 page was written and
// nothing was recorded.
func (h *Handler) save(w http.ResponseWriter, r *http.Request, rq *request, source, page, letter, dedup string, sigs []consent.Signal) bool {
	body, err := json.Marshal(Submission{Page: page, At: h.now().UTC(), Signals: sigs})
	if err != nil {
		h.message(w, r, rq, http.StatusInternalServerError, "busy_title", "busy_body")
		return false
	}
	id, dup, err := h.inbox.InsertInbound(r.Context(), store.Inbound{
		Source: source, Kind: page, DedupKey: dedup, Method: http.MethodPost, Path: "/" + letter + "/" + rq.claims.ID,
		Headers: json.RawMessage(`{"Content-Type":["application/json"]}`), Body: body,
	})
	if err != nil {
		h.log.Error("page: inbox write failed", "page", page, "err", err)
		w.Header().Set("Retry-After", "30")
		h.message(w, r, rq, http.StatusServiceUnavailable, "busy_title", "busy_body")
		return false
	}
	setOutcome(r, "stored")
	if dup {
		setOutcome(r, "duplicate")
	} else {
		if err := h.queue.Inbound(r.Context(), id); err != nil {
			h.log.Warn("page: enqueue failed; the sweeper will pick the submission up", "inbound", id, "err", err)
		}
	}
	h.log.Info("page submission stored", "page", page, "inbound", id, "duplicate", dup, "signals", len(sigs), "subject", rq.claims.SubjectID)
	return true
}

// digest is a short stable hash of parts, for dedup keys.
func digest(parts ...string) string {
	s := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(s[:12])
}

// --- one-click unsubscribe -------------------------------------------------

func (h *Handler) unsubscribeKey(rq *request) consent.Key {
	return consent.Key{Channel: rq.claims.Channel, Brand: rq.claims.Brand, Purpose: rq.claims.ConsentPurpose}
}

// unsubscribeGet shows the one-button page. It changes nothing: mail
// scanners and link previews fetch every URL of a message (RFC 8058 §1).
func (h *Handler) unsubscribeGet(w http.ResponseWriter, r *http.Request) {
	rq, ok := h.begin(w, r, links.Unsubscribe)
	if !ok {
		return
	}
	k := h.unsubscribeKey(rq)
	rq.data.What = h.cat.In(rq.lang).What(k)
	rq.data.PrefsURL = h.preferencesLink(rq)
	for _, t := range rq.view.Toggles {
		if t.Key == k && t.Status == string(consent.StatusWithdrawn) && !t.On {
			h.render(w, http.StatusOK, "unsubscribed", rq.data) // already: nothing to ask
			return
		}
	}
	h.render(w, http.StatusOK, "unsubscribe", rq.data)
}

// preferencesLink signs a preference-centre link for the same subject and
// brand, so the unsubscribe pages can offer every other choice ("" when
// it cannot be signed).
func (h *Handler) preferencesLink(rq *request) string {
	tok, _, err := h.signer.Issue(links.Claims{Purpose: links.Preferences, SubjectID: rq.claims.SubjectID, Brand: rq.claims.Brand,
		ExpiresAt: h.now().Add(h.cfg.PreferencesTTL)})
	if err != nil {
		return ""
	}
	return strings.TrimRight(h.cfg.PublicURL, "/") + "/p/" + tok + "?lang=" + rq.lang
}

// unsubscribePost is RFC 8058's one-click POST: the body must hold
// List-Unsubscribe=One-Click (form-encoded or multipart); no cookie or
// session is read, nothing redirects. It records one withdrawal of the
// link's brand, channel and purpose (evidence: token id, time, user agent,
// IP truncated) and answers 200 once it is stored. Idempotent: repeating
// it before a new grant stores nothing new (the inbox dedup key is the
// token id and the state's time), and a standing withdrawal is answered
// 200 without a new row.
func (h *Handler) unsubscribePost(w http.ResponseWriter, r *http.Request) {
	rq, ok := h.begin(w, r, links.Unsubscribe)
	if !ok {
		return
	}
	if err := ParseOneClick(r.Header.Get("Content-Type"), rq.body); err != nil {
		h.message(w, r, rq, http.StatusBadRequest, "bad_title", "bad_body")
		return
	}
	k := h.unsubscribeKey(rq)
	rq.data.What = h.cat.In(rq.lang).What(k)
	rq.data.PrefsURL = h.preferencesLink(rq)
	var t service.Toggle
	for _, x := range rq.view.Toggles {
		if x.Key == k {
			t = x
		}
	}
	if t.Status == string(consent.StatusWithdrawn) && !t.On {
		setOutcome(r, "unchanged")
		h.render(w, http.StatusOK, "unsubscribed", rq.data)
		return
	}
	sig := consent.Signal{Subject: subject(rq.view, k.Channel), Channel: k.Channel, Brand: k.Brand, Purpose: k.Purpose,
		Status: consent.StatusWithdrawn, OccurredAt: h.now().UTC(), Source: SourceOneClick,
		Evidence: h.evidence(r, rq, "one_click", "u")}
	dedup := "u:" + rq.claims.ID + ":" + strconv.FormatInt(t.Since.Unix(), 10)
	if !h.save(w, r, rq, SourceOneClick, "one_click", "u", dedup, []consent.Signal{sig}) {
		return
	}
	h.render(w, http.StatusOK, "unsubscribed", rq.data)
}

// --- preference centre -----------------------------------------------------

func (h *Handler) preferencesGet(w http.ResponseWriter, r *http.Request) {
	rq, ok := h.begin(w, r, links.Preferences)
	if !ok {
		return
	}
	h.renderPreferences(w, rq, nil, "")
}

// preferencesPost applies the form: each shown toggle whose box differs
// from what the rules allow now becomes a signal (ticked: a grant whose
// evidence — a box ticked by the person, not pre-ticked, optional, one
// per brand × channel × purpose, its wording version and hash, the
// partner list for partners — passes the six criteria; unticked: a
// withdrawal). "Every brand" withdraws every channel × purpose the person
// has from every configured brand (consent.ExpandScope) and ignores the
// toggles. Cross-origin posts are refused (Sec-Fetch-Site / Origin), and
// the form must carry the CSRF token it was rendered with.
func (h *Handler) preferencesPost(w http.ResponseWriter, r *http.Request) {
	rq, ok := h.begin(w, r, links.Preferences)
	if !ok {
		return
	}
	if err := h.cop.Check(r); err != nil {
		h.message(w, r, rq, http.StatusForbidden, "bad_title", "bad_body")
		return
	}
	f, err := ParsePreferences(rq.body)
	if err != nil {
		h.message(w, r, rq, http.StatusBadRequest, "bad_title", "bad_body")
		return
	}
	if !csrfValid(h.signer, rq.claims.ID, f.CSRF, h.now()) {
		setOutcome(r, "csrf_refused")
		h.renderPreferences(w, rq, nil, "prefs_expired_form")
		return
	}
	sigs := h.preferenceSignals(r, rq, f)
	if len(sigs) == 0 {
		setOutcome(r, "unchanged")
		h.renderPreferences(w, rq, nil, "prefs_nothing")
		return
	}
	parts := []string{f.CSRF}
	for _, s := range sigs {
		parts = append(parts, EncodeKey(consent.Key{Channel: s.Channel, Brand: s.Brand, Purpose: s.Purpose}), string(s.Status), string(s.Scope))
	}
	if !h.save(w, r, rq, SourcePreferences, "preference_centre", "p", "p:"+rq.claims.ID+":"+digest(parts...), sigs) {
		return
	}
	wanted := map[consent.Key]bool{}
	for _, t := range rq.view.Toggles {
		wanted[t.Key] = t.On
	}
	for _, s := range sigs {
		if s.Scope == consent.ScopeAllBrands {
			for k := range wanted {
				wanted[k] = false
			}
			break
		}
		wanted[consent.Key{Channel: s.Channel, Brand: s.Brand, Purpose: s.Purpose}] = s.Status == consent.StatusGranted
	}
	h.renderPreferences(w, rq, wanted, "prefs_saved")
}

// preferenceSignals turns form f into signals against the person's
// current state (rq.view).
func (h *Handler) preferenceSignals(r *http.Request, rq *request, f PrefForm) []consent.Signal {
	now := h.now().UTC()
	t := h.cat.In(rq.lang)
	base := h.evidence(r, rq, "preference_centre", "p")
	var sigs []consent.Signal
	if f.All {
		type scope struct {
			c consent.Channel
			p consent.Purpose
		}
		seen := map[scope]bool{}
		for _, tg := range rq.view.Toggles {
			s := scope{tg.Channel, tg.Purpose}
			if seen[s] {
				continue
			}
			seen[s] = true
			ev := base
			ev.Field, ev.Checkbox = "all", "on"
			sigs = append(sigs, consent.Signal{Subject: subject(rq.view, s.c), Channel: s.c, Brand: rq.claims.Brand, Purpose: s.p,
				Status: consent.StatusWithdrawn, OccurredAt: now, Source: SourcePreferences, Evidence: ev, Scope: consent.ScopeAllBrands})
		}
		return sigs
	}
	current := map[consent.Key]service.Toggle{}
	for _, tg := range rq.view.Toggles {
		current[tg.Key] = tg
	}
	for _, k := range f.Shown {
		tg, ok := current[k]
		if !ok {
			continue // not a toggle of this person's page: ignored
		}
		want := f.On[k]
		if want == tg.On {
			continue
		}
		if want && k.Purpose == consent.PurposePartners && h.cfg.PartnerList == "" {
			continue // a partners grant would not be informed
		}
		wd := t.Wording(k)
		ev := base
		ev.Field, ev.WordingVersion, ev.WordingHash = EncodeKey(k), wd.Version, wd.Hash
		notPreTicked := false
		ev.PreTicked = &notPreTicked
		status := consent.StatusWithdrawn
		ev.Checkbox = "off"
		if want {
			status, ev.Checkbox = consent.StatusGranted, "on"
			if k.Purpose == consent.PurposePartners {
				ev.PartnerList = h.cfg.PartnerList
			}
		}
		sigs = append(sigs, consent.Signal{Subject: subject(rq.view, k.Channel), Channel: k.Channel, Brand: k.Brand, Purpose: k.Purpose,
			Status: status, OccurredAt: now, Source: SourcePreferences, Evidence: ev})
	}
	return sigs
}

// renderPreferences renders the preference centre with the view's states,
// or with wanted (after a save: what the person chose, before the worker
// has applied it), and an optional status message.
func (h *Handler) renderPreferences(w http.ResponseWriter, rq *request, wanted map[consent.Key]bool, msg string) {
	t := h.cat.In(rq.lang)
	d := rq.data
	d.CSRF = csrfToken(h.signer, rq.claims.ID, h.now())
	if msg != "" {
		d.Notice = t.Get(msg)
	}
	var group *brandGroup
	for i, tg := range rq.view.Toggles {
		on := tg.On
		if wanted != nil {
			on = wanted[tg.Key]
		}
		wd := t.Wording(tg.Key)
		td := toggleData{ID: "t" + strconv.Itoa(i), Value: EncodeKey(tg.Key), Label: capitalize(t.What(tg.Key)), On: on,
			Wording: wd.Text, Version: t.Get("prefs_version", "version", wd.Version), Hash: wd.Short()}
		if tg.Purpose == consent.PurposePartners {
			if h.cfg.PartnerList != "" {
				td.Partners = t.Get("prefs_partners_list", "version", h.cfg.PartnerList, "partners", strings.Join(h.cfg.Partners, ", "))
			} else if !on {
				td.Disabled, td.Partners = true, t.Get("prefs_partners_off_only")
			}
		}
		if group == nil || group.Brand != tg.Brand {
			d.Groups = append(d.Groups, brandGroup{Brand: tg.Brand, Legend: t.Get("prefs_brand", "brand", tg.Brand)})
			group = &d.Groups[len(d.Groups)-1]
		}
		group.Toggles = append(group.Toggles, td)
	}
	d.AllLabel = t.Get("prefs_all", "brands", strings.Join(rq.view.Brands, ", "))
	h.render(w, http.StatusOK, "preferences", d)
}

// --- double opt-in ---------------------------------------------------------

func (h *Handler) confirmGet(w http.ResponseWriter, r *http.Request) {
	rq, ok := h.begin(w, r, links.Confirm)
	if !ok {
		return
	}
	h.renderConfirm(w, rq, "")
}

// confirmPost confirms every pending double opt-in request of the link's
// brand: one grant each, with evidence confirmed_at (now), opt_in_level
// double_opt_in, the confirmation wording's version and hash, IP and user
// agent (criterion express passes on the confirmation). CSRF-protected
// like the preference centre.
func (h *Handler) confirmPost(w http.ResponseWriter, r *http.Request) {
	rq, ok := h.begin(w, r, links.Confirm)
	if !ok {
		return
	}
	if err := h.cop.Check(r); err != nil {
		h.message(w, r, rq, http.StatusForbidden, "bad_title", "bad_body")
		return
	}
	f, err := ParsePreferences(rq.body)
	if err != nil {
		h.message(w, r, rq, http.StatusBadRequest, "bad_title", "bad_body")
		return
	}
	if !csrfValid(h.signer, rq.claims.ID, f.CSRF, h.now()) {
		setOutcome(r, "csrf_refused")
		h.renderConfirm(w, rq, "prefs_expired_form")
		return
	}
	if len(rq.view.Pending) == 0 {
		setOutcome(r, "unchanged")
		h.renderConfirm(w, rq, "")
		return
	}
	now := h.now().UTC()
	t := h.cat.In(rq.lang)
	var sigs []consent.Signal
	parts := []string{}
	for _, k := range rq.view.Pending {
		ev := confirmationEvidence(rq.view.PendingEvidence[k], h.evidence(r, rq, "double_opt_in", "c"), t.ConfirmWording(k), now)
		if k.Purpose == consent.PurposePartners && ev.PartnerList == "" {
			ev.PartnerList = h.cfg.PartnerList
		}
		sigs = append(sigs, consent.Signal{Subject: subject(rq.view, k.Channel), Channel: k.Channel, Brand: k.Brand, Purpose: k.Purpose,
			Status: consent.StatusGranted, OccurredAt: now, Source: SourceConfirm, Evidence: ev})
		parts = append(parts, EncodeKey(k))
	}
	for _, tg := range rq.view.Toggles {
		if slices.Contains(rq.view.Pending, tg.Key) {
			parts = append(parts, strconv.FormatInt(tg.Since.Unix(), 10))
		}
	}
	if !h.save(w, r, rq, SourceConfirm, "double_opt_in", "c", "c:"+rq.claims.ID+":"+digest(parts...), sigs) {
		return
	}
	rq.data.Notice = t.Get("confirm_done")
	rq.data.Done = true
	h.render(w, http.StatusOK, "confirm", rq.data)
}

// confirmationEvidence is the evidence of a confirmation grant: what the
// request itself showed — the box's answer and whether it was required,
// the wording (else the confirmation page's), the partner list — and the
// confirmation: this page, token id, IP, user agent, confirmed_at (now)
// and opt_in_level double_opt_in. A box the request showed pre-ticked is
// not carried over: the confirmation click is the express act.
func confirmationEvidence(req, page consent.Evidence, wd Wording, now time.Time) consent.Evidence {
	ev := page
	ev.Checkbox, ev.Required, ev.PartnerList = req.Checkbox, req.Required, req.PartnerList
	ev.WordingVersion, ev.WordingHash = req.WordingVersion, req.WordingHash
	if ev.WordingVersion == "" && ev.WordingHash == "" {
		ev.WordingVersion, ev.WordingHash = wd.Version, wd.Hash
	}
	ev.OptInLevel, ev.ConfirmedAt = "double_opt_in", &now
	return ev
}

func (h *Handler) renderConfirm(w http.ResponseWriter, rq *request, msg string) {
	t := h.cat.In(rq.lang)
	d := rq.data
	d.CSRF = csrfToken(h.signer, rq.claims.ID, h.now())
	if msg != "" {
		d.Notice = t.Get(msg)
	}
	for _, k := range rq.view.Pending {
		wd := t.ConfirmWording(k)
		d.Pending = append(d.Pending, toggleData{Label: capitalize(t.What(k)), Wording: wd.Text,
			Version: t.Get("prefs_version", "version", wd.Version), Hash: wd.Short()})
	}
	h.render(w, http.StatusOK, "confirm", d)
}

// --- rendering -------------------------------------------------------------

// pageData is what the templates render.
type pageData struct {
	T       Texts
	Lang    string
	Langs   []langLink
	Nonce   string
	Address string
	Brand   string
	What    string
	Notice  string
	// Title and Body name messages of the "message" page.
	Title, Body string
	CSRF        string
	Groups      []brandGroup
	AllLabel    string
	Pending     []toggleData
	Done        bool
	// PrefsURL is a preference-centre link for the unsubscribe pages.
	PrefsURL string
}

type langLink struct {
	Code, Name string
	Current    bool
}

type brandGroup struct {
	Brand, Legend string
	Toggles       []toggleData
}

type toggleData struct {
	ID, Value, Label string
	On, Disabled     bool
	Wording          string
	Version, Hash    string
	Partners         string
}

func (h *Handler) base(rq *request) pageData {
	d := pageData{T: h.cat.In(rq.lang), Lang: rq.lang}
	for _, l := range h.cat.Languages {
		d.Langs = append(d.Langs, langLink{Code: l, Name: h.cat.In(l).Get("lang_name"), Current: l == rq.lang})
	}
	if rq.view != nil {
		d.Address = Mask(rq.view.Identifier.Email, rq.view.Identifier.Phone)
		d.Brand = rq.claims.Brand
	}
	return d
}

// message renders the one-message page (errors, limits) with status code.
func (h *Handler) message(w http.ResponseWriter, _ *http.Request, rq *request, code int, title, body string) {
	d := h.base(rq)
	d.Title, d.Body = d.T.Get(title), d.T.Get(body)
	if code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "60")
	}
	h.render(w, code, "message", d)
}

// render writes template name with a fresh CSP nonce for its one inline
// style sheet; nothing else may load (default-src 'none'), forms post to
// this origin only.
func (h *Handler) render(w http.ResponseWriter, code int, name string, d pageData) {
	var n [16]byte
	_, _ = rand.Read(n[:])
	d.Nonce = base64.RawStdEncoding.EncodeToString(n[:])
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+d.Nonce+"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var buf strings.Builder
	if err := h.tpl.ExecuteTemplate(&buf, name, d); err != nil {
		h.log.Error("page: render", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(code)
	_, _ = io.WriteString(w, buf.String())
}

func capitalize(s string) string {
	for i, r := range s {
		return strings.ToUpper(string(r)) + s[i+len(string(r)):]
	}
	return s
}

// Mask shows an address without revealing it: its first character, "•••"
// and the domain ("c•••@example.com"); a number by its last two digits
// ("+33•••••••78"). Pages never show more.
func Mask(email, phone string) string {
	if email != "" {
		local, domain, ok := strings.Cut(email, "@")
		if !ok || local == "" {
			return "•••"
		}
		for _, r := range local {
			return string(r) + "•••@" + domain
		}
	}
	if len(phone) > 4 {
		return phone[:3] + strings.Repeat("•", len(phone)-5) + phone[len(phone)-2:]
	}
	return "•••"
}
