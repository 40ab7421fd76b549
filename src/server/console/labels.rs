//! The console's two languages: which one a browser gets, and every label in both. A label
//! a page asks for that is not here shows as its key (and fails `labels_used_are_translated`).

use actix_web::HttpRequest;

/// The console's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Nl,
}

/// The name of the language cookie.
pub const LANG_COOKIE: &str = "lang";

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Nl => "nl",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "en" => Some(Lang::En),
            "nl" => Some(Lang::Nl),
            _ => None,
        }
    }

    /// The `lang` cookie, else the first of Dutch or English in `Accept-Language` (by
    /// weight), else English.
    pub fn of(req: &HttpRequest) -> Lang {
        if let Some(lang) = cookie(req, LANG_COOKIE).and_then(|c| Lang::from_code(&c)) {
            return lang;
        }
        let header = req
            .headers()
            .get("accept-language")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Lang::from_accept_language(header)
    }

    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let weight = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or_default();
            let Some(lang) = Lang::from_code(primary) else {
                continue;
            };
            if weight > 0.0 && best.is_none_or(|(w, _)| weight > w) {
                best = Some((weight, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    /// The label `key` in this language; the key itself when there is none (a bug, visible).
    pub fn t(self, key: &'static str) -> &'static str {
        LABELS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or(key, |(_, en, nl)| match self {
                Lang::En => en,
                Lang::Nl => nl,
            })
    }
}

/// `(key, English, Dutch)`.
const LABELS: &[(&str, &str, &str)] = &[
    ("console", "belroute console", "belroute-console"),
    ("overview", "Overview", "Overzicht"),
    ("calls", "Calls", "Gesprekken"),
    ("try", "Try a call", "Gesprek proberen"),
    ("plugins", "Plugins", "Plugins"),
    ("subscriptions", "Subscriptions", "Abonnementen"),
    ("logout", "Log out", "Uitloggen"),
    ("login", "Log in", "Inloggen"),
    ("token", "Admin token", "Beheertoken"),
    (
        "login_hint",
        "Enter the admin token (admin.token in belroute.yaml).",
        "Vul het beheertoken in (admin.token in belroute.yaml).",
    ),
    (
        "wrong_token",
        "That token is not the admin token: check admin.token in belroute.yaml and try again.",
        "Dat is niet het beheertoken: controleer admin.token in belroute.yaml en probeer het opnieuw.",
    ),
    (
        "too_many_tries",
        "Too many wrong tokens from your address: try again in {s} seconds.",
        "Te veel verkeerde tokens vanaf uw adres: probeer het over {s} seconden opnieuw.",
    ),
    (
        "console_off",
        "The console is off: set admin.token in belroute.yaml and restart belroute (belroute.yaml and the ${VARIABLES} it names are read at start).",
        "De console staat uit: stel admin.token in belroute.yaml in en herstart belroute (belroute.yaml en de ${VARIABELEN} erin worden bij de start gelezen).",
    ),
    ("rulesets", "Rule sets", "Regelsets"),
    (
        "last_replay",
        "After the last reload",
        "Na de laatste herlaadbeurt",
    ),
    (
        "requeue",
        "Re-queue parked events",
        "Geparkeerde events opnieuw aanbieden",
    ),
    ("requeued", "returned to new", "opnieuw aangeboden"),
    ("new_subscription", "New subscription", "Nieuw abonnement"),
    ("create", "Create", "Aanmaken"),
    ("edit", "Edit", "Wijzigen"),
    ("save", "Save", "Opslaan"),
    ("changes_saved", "changes saved", "wijzigingen opgeslagen"),
    ("channel_type", "Channel type", "Kanaaltype"),
    ("endpoint", "Endpoint", "Endpoint"),
    ("payload_type", "Payload type", "Payloadtype"),
    (
        "headers",
        "Headers (one per line: Name: value)",
        "Headers (één per regel: Naam: waarde)",
    ),
    (
        "headers_keep",
        "Headers (one per line: Name: value; a blank value keeps the stored one, a removed line removes the header)",
        "Headers (één per regel: Naam: waarde; een lege waarde houdt de opgeslagen waarde, een verwijderde regel verwijdert de header)",
    ),
    ("events", "Events", "Events"),
    (
        "send_test",
        "Send a test notification",
        "Testmelding versturen",
    ),
    ("test_sent", "test notification to", "testmelding naar"),
    ("rotate_key", "Rotate key", "Sleutel vervangen"),
    ("api_key_for", "New API key for", "Nieuwe API-sleutel voor"),
    (
        "api_key_once",
        "Shown once: give it to the subscriber now; belroute keeps only its hash.",
        "Eenmalig getoond: geef hem nu aan de abonnee; belroute bewaart alleen de hash.",
    ),
    (
        "previous_key_until",
        "The previous key is still taken until",
        "De vorige sleutel werkt nog tot",
    ),
    (
        "from_file",
        "From the configuration file (belroute.yaml): change it there and restart belroute.",
        "Uit het configuratiebestand (belroute.yaml): wijzig het daar en herstart belroute.",
    ),
    (
        "name_missing",
        "The name is missing: give the subscription a name of letters, digits, - and _ (it is part of the API path).",
        "De naam ontbreekt: geef het abonnement een naam van letters, cijfers, - en _ (hij staat in het API-pad).",
    ),
    ("ruleset", "Rule set", "Regelset"),
    ("version", "Version", "Versie"),
    ("rules", "Rules", "Regels"),
    ("file", "File", "Bestand"),
    ("saved", "File saved", "Bestand opgeslagen"),
    ("default", "Default", "Standaard"),
    (
        "deadline_hits",
        "Deadline hits (since start)",
        "Deadline verstreken (sinds start)",
    ),
    ("refused", "Refused files", "Geweigerde bestanden"),
    (
        "refused_none",
        "No file refused.",
        "Geen bestand geweigerd.",
    ),
    ("serving", "still serving version", "nog in gebruik: versie"),
    (
        "quarantined",
        "Quarantined rule sets",
        "Regelsets in quarantaine",
    ),
    (
        "quarantined_none",
        "No rule set quarantined.",
        "Geen regelset in quarantaine.",
    ),
    (
        "quarantine_answers",
        "Its rules kept making the operating system stop worker processes; its calls answer",
        "De regels lieten het besturingssysteem steeds werkprocessen stoppen; gesprekken krijgen direct",
    ),
    ("release", "Release", "Vrijgeven"),
    (
        "released",
        "released: its rules decide its calls again",
        "vrijgegeven: de regels beslissen weer",
    ),
    (
        "not_quarantined",
        "was not quarantined",
        "stond niet in quarantaine",
    ),
    (
        "never_loaded",
        "never loaded: calls to it get 404",
        "nooit geladen: gesprekken krijgen 404",
    ),
    ("last_hour", "Last hour", "Afgelopen uur"),
    (
        "calls_per_minute",
        "Calls per minute",
        "Gesprekken per minuut",
    ),
    ("routes", "Routes", "Routes"),
    ("route", "Route", "Route"),
    ("count", "Calls", "Gesprekken"),
    ("reasons", "Why", "Waarom"),
    ("call_log", "Call log", "Gesprekslog"),
    ("queued", "Waiting to be written", "Wacht op schrijven"),
    ("written", "Written", "Geschreven"),
    (
        "dropped",
        "Lost (spill file full)",
        "Verloren (overloopbestand vol)",
    ),
    (
        "spilled",
        "Spilled to file (queue full) / replayed",
        "Naar bestand (wachtrij vol) / teruggezet",
    ),
    ("database", "Database", "Database"),
    ("up", "up", "bereikbaar"),
    ("down", "down", "onbereikbaar"),
    ("no_calls", "No calls.", "Geen gesprekken."),
    ("time", "Time", "Tijd"),
    ("caller", "Caller", "Beller"),
    ("rule", "Rule", "Regel"),
    ("reason", "Reason", "Reden"),
    ("duration", "Duration", "Duur"),
    ("filter", "Filter", "Filteren"),
    ("since", "Since", "Vanaf"),
    ("until", "Until", "Tot"),
    ("all", "all", "alle"),
    (
        "live",
        "Updates every 5 seconds.",
        "Wordt elke 5 seconden bijgewerkt.",
    ),
    ("trace", "Trace", "Verloop"),
    ("call", "Call", "Gesprek"),
    ("call_data", "Call data", "Gespreksgegevens"),
    ("lookups", "Lookups", "Opzoekingen"),
    ("lookup", "Lookup", "Opzoeking"),
    ("outcome", "Outcome", "Uitkomst"),
    ("cache", "Cache", "Cache"),
    ("from_cache", "from the cache", "uit de cache"),
    (
        "stale",
        "stale (plugin failed)",
        "verouderd (plugin faalde)",
    ),
    ("asked", "asked", "gevraagd"),
    ("reveal", "Show the number", "Nummer tonen"),
    (
        "revealed",
        "Numbers shown; this was logged.",
        "Nummers getoond; dit is gelogd.",
    ),
    (
        "masked",
        "Numbers are masked except the last 3 digits.",
        "Nummers zijn gemaskeerd op de laatste 3 cijfers na.",
    ),
    (
        "record",
        "The record (as simulate --json prints it)",
        "Het record (zoals simulate --json het toont)",
    ),
    ("matched", "matched", "voldaan"),
    ("no_match", "no match", "niet voldaan"),
    ("fell_through", "fell through", "doorgevallen"),
    ("skipped", "skipped", "overgeslagen"),
    ("error", "error", "fout"),
    ("not_reached", "not reached", "niet bereikt"),
    ("found", "found", "gevonden"),
    ("not_found", "not found", "niet gevonden"),
    ("unavailable", "unavailable", "niet beschikbaar"),
    (
        "fields",
        "Fields (one FIELD=VALUE a line)",
        "Velden (één VELD=WAARDE per regel)",
    ),
    (
        "at",
        "Local time (2026-11-23 10:00; empty: now)",
        "Lokale tijd (2026-11-23 10:00; leeg: nu)",
    ),
    (
        "facts",
        "Facts instead of the plugins (one NAME={json}, NAME=not-found or NAME=unavailable a line)",
        "Feiten in plaats van de plugins (één NAAM={json}, NAAM=not-found of NAAM=unavailable per regel)",
    ),
    ("run", "Route this call", "Dit gesprek routeren"),
    (
        "try_hint",
        "Decides a call against the live rule sets, like belroute simulate; nothing is logged or sent.",
        "Beslist een gesprek met de live regelsets, zoals belroute simulate; er wordt niets gelogd of verstuurd.",
    ),
    ("by_default", "the default", "de standaard"),
    ("breaker", "Breaker", "Stroomonderbreker"),
    ("requests", "Requests", "Verzoeken"),
    ("failures", "Failures", "Mislukt"),
    ("error_rate", "Error rate", "Foutpercentage"),
    ("cache_hits", "Cache hits", "Cachetreffers"),
    ("hit_rate", "Hit rate", "Trefkans"),
    ("cached_entries", "Cached callers", "Bellers in cache"),
    (
        "skipped_open",
        "Skipped (breaker open)",
        "Overgeslagen (onderbreker open)",
    ),
    ("invalidate", "Forget this caller", "Deze beller vergeten"),
    (
        "type_caller",
        "Type the caller's number (any way of writing it) to forget.",
        "Typ het nummer van de beller (schrijfwijze maakt niet uit) om het te vergeten.",
    ),
    (
        "invalidated",
        "Forgotten: the next call asks the plugin again.",
        "Vergeten: het volgende gesprek vraagt de plugin opnieuw.",
    ),
    (
        "no_plugins",
        "No plugins configured (plugins: in belroute.yaml).",
        "Geen plugins ingesteld (plugins: in belroute.yaml).",
    ),
    (
        "no_subscriptions",
        "No subscriptions configured (subscriptions: in belroute.yaml).",
        "Geen abonnementen ingesteld (subscriptions: in belroute.yaml).",
    ),
    ("status", "Status", "Status"),
    ("last_error", "Last error", "Laatste fout"),
    (
        "failures_in_a_row",
        "Failures in a row",
        "Fouten achter elkaar",
    ),
    ("notifications", "Notifications sent", "Meldingen verstuurd"),
    (
        "backlog",
        "Backlog (new + claimed)",
        "Achterstand (nieuw + geclaimd)",
    ),
    (
        "parked",
        "Parked (max retries)",
        "Geparkeerd (max. pogingen)",
    ),
    (
        "deliveries",
        "Deliveries by state",
        "Afleveringen per status",
    ),
    ("name", "Name", "Naam"),
    (
        "database_unavailable",
        "The call log database is unavailable; this part shows again when it answers.",
        "De gesprekslog-database is niet bereikbaar; dit deel verschijnt weer zodra ze antwoordt.",
    ),
    (
        "not_found_call",
        "No call with this uuid in the call log.",
        "Geen gesprek met deze uuid in de gesprekslog.",
    ),
    ("back", "Back to the calls", "Terug naar de gesprekken"),
    (
        "bad_time",
        "Write the time as 2026-11-23 10:00.",
        "Schrijf de tijd als 2026-11-23 10:00.",
    ),
    (
        "unknown_ruleset",
        "No such rule set is being served; pick one from the list.",
        "Deze regelset wordt niet geserveerd; kies er een uit de lijst.",
    ),
    ("lang_other", "Nederlands", "English"),
    (
        "csrf",
        "This form has expired or did not come from this console: reload the page and try again.",
        "Dit formulier is verlopen of kwam niet van deze console: laad de pagina opnieuw en probeer het nog eens.",
    ),
    ("agent", "Agent", "Medewerker"),
    (
        "breaker_closed",
        "closed (the plugin is asked)",
        "gesloten (de plugin wordt gevraagd)",
    ),
    (
        "breaker_open",
        "open (the plugin is skipped)",
        "open (de plugin wordt overgeslagen)",
    ),
    (
        "breaker_half_open",
        "half open (trying again)",
        "half open (probeert opnieuw)",
    ),
    ("target", "Asks", "Vraagt"),
    ("timeout", "Timeout", "Time-out"),
    ("cache_ttl", "found for", "gevonden:"),
    ("cache_negative", "not found for", "niet gevonden:"),
    ("cache_stale", "stale if failing", "verouderd bij storing:"),
    ("cache_max", "at most", "hoogstens"),
    (
        "cache_off",
        "off: every call asks the plugin",
        "uit: elk gesprek vraagt de plugin",
    ),
    (
        "no_number",
        "Not asked (caller without a number)",
        "Niet gevraagd (beller zonder nummer)",
    ),
    (
        "no_such_plugin",
        "no plugin of that name",
        "geen plugin met die naam",
    ),
    ("delivery_new", "new", "nieuw"),
    ("delivery_claimed", "claimed", "opgehaald"),
    ("delivery_success", "delivered", "afgeleverd"),
    ("delivery_parked", "parked", "geparkeerd"),
    ("status_active", "active", "actief"),
    ("status_off", "off", "uit"),
    ("status_error", "failing", "in storing"),
    ("invalid_number", "not a valid number", "geen geldig nummer"),
    ("withheld", "withheld", "afgeschermd"),
    ("no_uuid", "(none sent)", "(niet meegestuurd)"),
    (
        "not_needed",
        "not needed (no rule read it)",
        "niet nodig (geen regel las het)",
    ),
    ("source", "Source", "Bron"),
    ("typed_in", "typed in", "ingevuld"),
    (
        "trace_unreadable",
        "The trace of this call cannot be read.",
        "Het verloop van dit gesprek is niet te lezen.",
    ),
    (
        "reason_matched",
        "a rule matched",
        "een regel was van toepassing",
    ),
    (
        "reason_no_match",
        "no rule matched: the default",
        "geen regel van toepassing: de standaard",
    ),
    (
        "reason_deadline",
        "out of time: the default",
        "tijd op: de standaard",
    ),
    (
        "reason_over_share",
        "busy (over its share): the default",
        "druk (boven het eigen deel): de standaard",
    ),
    (
        "reason_unreadable",
        "unreadable call data: the default",
        "onleesbare gespreksgegevens: de standaard",
    ),
    (
        "reason_failed",
        "failed: the default",
        "mislukt: de standaard",
    ),
    (
        "reason_quarantined",
        "quarantined: the default",
        "in quarantaine: de standaard",
    ),
    (
        "reason_undeclared_route",
        "a route not in routes: the default",
        "een route buiten routes: de standaard",
    ),
    ("reason_other", "other", "anders"),
    (
        "replay_summary",
        "{old}→{new}: {n} calls decided again, {changed} would route differently",
        "{old}→{new}: {n} gesprekken opnieuw beslist, {changed} zouden anders lopen",
    ),
    (
        "replay_unrecorded",
        "{n} read a lookup not recorded then",
        "{n} lazen een opzoeking die toen niet is vastgelegd",
    ),
    (
        "replay_not_compared",
        "{n} not compared",
        "{n} niet vergeleken",
    ),
    (
        "replay_stopped",
        "stopped at its limit",
        "gestopt bij de grens",
    ),
    ("audit", "Audit log", "Auditlog"),
    ("based_on", "based on", "gebaseerd op"),
    ("check", "Check", "Controleren"),
    (
        "check_ok",
        "Check: no problems.",
        "Controle: geen problemen.",
    ),
    (
        "check_problems",
        "Check: {n} problem(s); each is shown at its line below.",
        "Controle: {n} probleem/problemen; elk staat hieronder bij zijn regel.",
    ),
    (
        "compare",
        "Compare with real calls",
        "Vergelijken met echte gesprekken",
    ),
    ("compare_a", "Old", "Oud"),
    ("compare_b", "New", "Nieuw"),
    (
        "compare_line",
        "{n} logged calls decided by the serving version and by the draft: {changed} would route differently.",
        "{n} vastgelegde gesprekken beslist door de huidige versie en door het concept: {changed} zouden anders lopen.",
    ),
    (
        "compare_revisions",
        "Compare the two",
        "Vergelijk deze twee",
    ),
    (
        "compare_since",
        "Calls of the last",
        "Gesprekken van de laatste",
    ),
    (
        "compare_title",
        "Compared with real calls",
        "Vergeleken met echte gesprekken",
    ),
    ("content", "Content", "Inhoud"),
    ("created", "Created", "Aangemaakt"),
    ("delete", "Delete", "Verwijderen"),
    ("details", "Details", "Details"),
    (
        "diff_with_now",
        "Differences with the file now",
        "Verschillen met het bestand nu",
    ),
    ("draft", "Draft", "Concept"),
    (
        "draft_kept",
        "Your draft is kept below: compare it with the new version, then publish again.",
        "Je concept staat hieronder nog: vergelijk het met de nieuwe versie en publiceer opnieuw.",
    ),
    ("examples", "examples", "voorbeelden"),
    ("failed", "failed", "mislukt"),
    (
        "file_refused",
        "The file on disk was refused; the version above keeps serving.",
        "Het bestand op schijf is geweigerd; de versie hierboven blijft in gebruik.",
    ),
    ("form_holidays", "Holidays", "Feestdagen"),
    ("form_hours", "Opening hours", "Openingstijden"),
    (
        "form_next",
        "Next: check and compare",
        "Volgende: controleren en vergelijken",
    ),
    ("from", "From", "Van"),
    ("history", "History", "Geschiedenis"),
    (
        "holidays_hint",
        "One day off per line: the date (YYYY-MM-DD) and a name, e.g. 2027-07-16 Bedrijfsuitje. Only this list changes in the file.",
        "Eén vrije dag per regel: de datum (JJJJ-MM-DD) en een naam, bijv. 2027-07-16 Bedrijfsuitje. Alleen deze lijst verandert in het bestand.",
    ),
    (
        "hours_hint",
        "Days and times, e.g. mon-fri 08:30-17:30; sat 10:00-14:00 (Dutch days too: ma-vr). Only these values change in the file.",
        "Dagen en tijden, bijv. ma-vr 08:30-17:30; za 10:00-14:00. Alleen deze waarden veranderen in het bestand.",
    ),
    ("line", "line", "regel"),
    ("new_ruleset", "New rule set", "Nieuwe regelset"),
    ("new_token", "New token", "Nieuw token"),
    (
        "no_changes",
        "No changes in this period.",
        "Geen wijzigingen in deze periode.",
    ),
    (
        "no_revisions",
        "No revisions stored yet (the database may not answer).",
        "Nog geen versies opgeslagen (de database antwoordt misschien niet).",
    ),
    (
        "no_such_revision",
        "No revision {hash} of this rule set is stored.",
        "Versie {hash} van deze regelset is niet opgeslagen.",
    ),
    (
        "no_such_token",
        "There is no token named {name}.",
        "Er is geen token met de naam {name}.",
    ),
    (
        "no_tests",
        "The rule set has no tests: add some under tests: or in its .test.yaml file.",
        "De regelset heeft geen tests: voeg ze toe onder tests: of in het .test.yaml-bestand.",
    ),
    (
        "no_tokens",
        "No tokens besides admin.token.",
        "Geen tokens naast admin.token.",
    ),
    ("note", "Note", "Toelichting"),
    (
        "note_required",
        "Note (required): what the change does and why",
        "Toelichting (verplicht): wat de wijziging doet en waarom",
    ),
    ("on_disk", "On disk", "Op schijf"),
    ("passed", "passed", "geslaagd"),
    (
        "pick_action",
        "Choose Check, Test, Compare or Publish.",
        "Kies Controleren, Testen, Vergelijken of Publiceren.",
    ),
    (
        "pick_two",
        "Choose two revisions to compare.",
        "Kies twee versies om te vergelijken.",
    ),
    ("publish", "Publish", "Publiceren"),
    (
        "published",
        "Published: version {hash} serves now.",
        "Gepubliceerd: versie {hash} is nu in gebruik.",
    ),
    (
        "published_same",
        "Nothing to publish: version {hash} serves already.",
        "Niets te publiceren: versie {hash} is al in gebruik.",
    ),
    (
        "restore",
        "Restore this revision",
        "Deze versie terugzetten",
    ),
    (
        "restore_draft",
        "Revision {hash} as a draft: check, compare and publish it to restore it.",
        "Versie {hash} als concept: controleer, vergelijk en publiceer om hem terug te zetten.",
    ),
    ("restore_note", "Restore {hash}", "Terugzetten naar {hash}"),
    ("result", "Result", "Uitkomst"),
    ("role", "Role", "Rol"),
    ("role_admin", "everything", "alles"),
    (
        "role_agent",
        "only reports which agent took a call",
        "meldt alleen welke medewerker een gesprek aannam",
    ),
    (
        "role_editor",
        "console, change rule sets",
        "console, regelsets wijzigen",
    ),
    (
        "role_viewer",
        "console read-only, numbers masked",
        "console alleen lezen, nummers gemaskeerd",
    ),
    (
        "role_may_not",
        "Token {name} has role {role}, which may not do this.",
        "Token {name} heeft de rol {role}, die dit niet mag.",
    ),
    (
        "role_no_console",
        "Token {name} has role {role}, which has no console.",
        "Token {name} heeft de rol {role}, die geen console heeft.",
    ),
    (
        "rule_file_then",
        "The rule file as it was when this call was routed",
        "Het regelbestand zoals het was toen dit gesprek werd gerouteerd",
    ),
    (
        "ruleset_exists",
        "a rule set of that name exists already.",
        "er bestaat al een regelset met die naam.",
    ),
    (
        "ruleset_name",
        "Name (letters, digits, - and _; it becomes /hooks/NAME)",
        "Naam (letters, cijfers, - en _; wordt /hooks/NAAM)",
    ),
    ("source_api", "API", "API"),
    ("source_console", "console", "console"),
    ("source_file", "file", "bestand"),
    ("source_now", "The file now", "Het bestand nu"),
    ("source_push", "push", "push"),
    ("source_restore", "restore", "teruggezet"),
    ("test", "Run the tests", "Tests draaien"),
    ("test_name", "Test", "Test"),
    (
        "tests_fail",
        "{n} of {of} tests fail.",
        "{n} van {of} tests mislukken.",
    ),
    (
        "tests_pass",
        "All {n} tests pass.",
        "Alle {n} tests slagen.",
    ),
    ("the_default", "the default", "de standaard"),
    ("to", "To", "Naar"),
    (
        "token_deleted",
        "Token {name} is deleted; it stops working at once here and within 5 seconds on other instances.",
        "Token {name} is verwijderd; het werkt hier meteen niet meer en op andere instanties binnen 5 seconden.",
    ),
    ("token_for", "Token for", "Token voor"),
    ("tokens", "Tokens", "Tokens"),
    (
        "tokens_hint",
        "Each token has one role. admin.token in belroute.yaml is the admin beside them.",
        "Elk token heeft één rol. admin.token in belroute.yaml is de beheerder daarnaast.",
    ),
    ("what", "What", "Wat"),
    ("when", "When", "Wanneer"),
    ("which", "Which", "Welke"),
    ("who", "Who", "Wie"),
    ("why", "Why", "Waarom"),
    ("window_day", "day", "dag"),
    ("window_week", "7 days", "7 dagen"),
    ("window_month", "30 days", "30 dagen"),
    ("serving_now", "serving", "in gebruik"),
    ("examples_head", "Examples", "Voorbeelden"),
    ("instances", "Instances", "Instanties"),
    ("instance", "Instance", "Instantie"),
    ("seen", "Last seen", "Laatst gezien"),
    ("serving_versions", "Serving", "In gebruik"),
    ("this_instance", "this one", "deze"),
    ("draining", "draining", "stopt"),
    (
        "branches_head",
        "Voorwaarde-app branches",
        "Takken van de Voorwaarde-app",
    ),
    (
        "branches_help",
        "The Voorwaarde-app after the Webhook-app needs one branch for each of these answers, and a fallback branch for no answer.",
        "De Voorwaarde-app na de Webhook-app heeft voor elk van deze antwoorden een tak nodig, en een terugvaltak voor geen antwoord.",
    ),
    (
        "branches_undeclared",
        "This rule set does not list its routes: add `routes:` so check can tell you when a rule answers something the belplan has no branch for.",
        "Deze regelset noemt zijn routes niet: voeg `routes:` toe, dan meldt check een regel die iets antwoordt waarvoor het belplan geen tak heeft.",
    ),
    ("any_text", "any text", "elke tekst"),
];

/// The value of cookie `name` in the request's `Cookie` header(s).
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all("cookie")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim().to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_from_the_browser() {
        assert_eq!(
            Lang::from_accept_language("nl-NL,nl;q=0.9,en;q=0.8"),
            Lang::Nl
        );
        assert_eq!(Lang::from_accept_language("en-GB,nl;q=0.5"), Lang::En);
        assert_eq!(Lang::from_accept_language("de-DE,nl;q=0.4"), Lang::Nl);
        assert_eq!(Lang::from_accept_language("fr"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
    }

    /// Every label a console page asks for (`lang.t("…")` in its source, and the words for
    /// every reason, breaker, notifier and delivery state it shows) is here, in both
    /// languages: a page never shows a key or English on a Dutch page.
    #[test]
    fn labels_used_are_translated() {
        let sources = [
            include_str!("layout.rs"),
            include_str!("mod.rs"),
            include_str!("trace.rs"),
            include_str!("pages/overview.rs"),
            include_str!("pages/calls.rs"),
            include_str!("pages/call.rs"),
            include_str!("pages/try_call.rs"),
            include_str!("pages/plugins.rs"),
            include_str!("pages/subscriptions.rs"),
        ];
        let mut used = Vec::new();
        for source in sources {
            for (i, _) in source.match_indices(".t(\"") {
                let rest = &source[i + 4..];
                if let Some(end) = rest.find('"') {
                    used.push(&rest[..end]);
                }
            }
        }
        assert!(used.len() > 100, "the scan finds the labels: {used:?}");
        let missing: Vec<&str> = used
            .iter()
            .copied()
            .filter(|key| !LABELS.iter().any(|(k, _, _)| k == key))
            .collect();
        assert!(
            missing.is_empty(),
            "labels without a translation: {missing:?}"
        );
        let nl = Lang::Nl;
        for code in super::super::trace::reasons() {
            let words = super::super::trace::reason(nl, code);
            assert!(LABELS.iter().any(|(_, _, d)| *d == words), "reason {code}");
            assert_ne!(
                words,
                nl.t("reason_other"),
                "reason {code} has its own words"
            );
        }
        for state in ["closed", "open", "half_open"] {
            assert_ne!(
                super::super::pages::plugins::breaker(nl, state),
                nl.t("reason_other")
            );
        }
        for status in ["active", "off", "error"] {
            let words = super::super::pages::subscriptions::notifier_status(nl, status);
            assert_ne!(words, nl.t("reason_other"), "{status}");
        }
        for status in crate::storage::DeliveryStatus::ALL {
            let words = super::super::pages::subscriptions::delivery_status(nl, status.as_str());
            assert_ne!(words, nl.t("reason_other"), "{status}");
        }
    }

    #[test]
    fn every_label_has_both_languages() {
        for (key, en, nl) in LABELS {
            assert!(!en.is_empty() && !nl.is_empty(), "{key}");
        }
        for (i, (key, _, _)) in LABELS.iter().enumerate() {
            assert!(
                !LABELS[..i].iter().any(|(k, _, _)| k == key),
                "{key} is twice"
            );
        }
    }
}
