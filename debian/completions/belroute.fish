# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_belroute_global_optspecs
    string join \n log-format= h/help V/version
end

function __fish_belroute_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_belroute_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_belroute_using_subcommand
    set -l cmd (__fish_belroute_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c belroute -n "__fish_belroute_needs_command" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c belroute -n "__fish_belroute_needs_command" -s V -l version -d 'Print version'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "serve" -d 'Serve /hooks/{ruleset} for Callvoip, reloading rule files as they are saved'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "check" -d 'Validate every rule file and test file; print each problem as file:line:col'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "test" -d 'Run the rule tests (rules/{name}.test.yaml and `tests:` sections) without any CRM'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "migrate" -d 'Create or update belroute\'s database tables, then exit (serve does this too)'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "init" -d 'Write a starter belroute.yaml, rules/main.yaml with its tests, and a .gitignore'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "simulate" -d 'Decide one call without Callvoip and show why: every rule and every lookup'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "replay" -d 'Decide logged calls again with the rule files as they are now: which would route differently, before you save a change. Reads the call log only'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "rules" -d 'Rule sets in the database, for several instances (`rules.source: database`)'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "completions" -d 'Print a shell completion script: `belroute completions bash > /etc/bash_completion.d/belroute`'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "worker" -d 'A rule worker process, started by `serve` (and the other commands) itself'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "manpages" -d 'Write the man pages (belroute.1 and belroute-COMMAND.1) into DIR, for packaging'
complete -c belroute -n "__fish_belroute_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c belroute -n "__fish_belroute_using_subcommand serve" -l rules -d 'Directory of rule sets: rules/{name}.yaml serves /hooks/{name}' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand serve" -l config -d 'Server configuration; ./belroute.yaml is read when present' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand serve" -l listen -d 'Address to listen on' -r
complete -c belroute -n "__fish_belroute_using_subcommand serve" -l database -d 'belroute\'s own database (call log): sqlite://FILE or postgres://… [default: $DATABASE_URL, else sqlite://belroute.db]' -r
complete -c belroute -n "__fish_belroute_using_subcommand serve" -l workers -d 'Worker threads (default: one per CPU)' -r
complete -c belroute -n "__fish_belroute_using_subcommand serve" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand serve" -s h -l help -d 'Print help'
complete -c belroute -n "__fish_belroute_using_subcommand check" -l rules -d 'Directory of rule sets: rules/{name}.yaml serves /hooks/{name}' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand check" -l config -d 'Server configuration; ./belroute.yaml is read when present' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand check" -l probe-caller -d 'The caller an http plugin is asked about when probing' -r
complete -c belroute -n "__fish_belroute_using_subcommand check" -l format -d 'Output: text for people, or json for CI' -r -f -a "text\t'`file:line:col: message` per problem, then a summary line'
json\t'One JSON document: ok, problems [{file, line, column, message}], counts, notes, warnings'"
complete -c belroute -n "__fish_belroute_using_subcommand check" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand check" -l probe -d 'Also ask each sql and http plugin\'s source what it answers, and compare it with the plugin\'s declared `facts:` (the database prepares the query; the API is asked about --probe-caller). Needs the plugins\' secrets in the environment'
complete -c belroute -n "__fish_belroute_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c belroute -n "__fish_belroute_using_subcommand test" -l rules -d 'Directory of rule sets: rules/{name}.yaml serves /hooks/{name}' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand test" -l config -d 'Server configuration; ./belroute.yaml is read when present' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand test" -l format -d 'Output: text for people, json, or junit (JUnit XML for CI test reports)' -r -f -a "text\t'Lines for people: `file:line:col: message`, `ok`/`FAIL` per test'
json\t'One JSON document'
junit\t'JUnit XML: one testsuite per rule set, one testcase per test'"
complete -c belroute -n "__fish_belroute_using_subcommand test" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand test" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c belroute -n "__fish_belroute_using_subcommand migrate" -l database -d 'belroute\'s own database (call log): sqlite://FILE or postgres://… [default: $DATABASE_URL, else sqlite://belroute.db]' -r
complete -c belroute -n "__fish_belroute_using_subcommand migrate" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand migrate" -s h -l help -d 'Print help'
complete -c belroute -n "__fish_belroute_using_subcommand init" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand init" -s h -l help -d 'Print help'
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -l rules -d 'Directory of rule sets: rules/{name}.yaml serves /hooks/{name}' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -l config -d 'Server configuration; ./belroute.yaml is read when present' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -l caller -d 'The caller\'s number, as Callvoip sends it (31152026057) or any other way' -r
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -l call -d 'A JSON file of call data (e.g. tests/fixtures/callvoip/post-example.json)' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -l field -d 'A call field, FIELD=VALUE; may be repeated' -r
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -l at -d 'Local time in the rule set\'s zone: "2026-11-23 10:00" (default: now)' -r
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -l facts -d 'What a lookup answers, NAME={json}, NAME=not-found or NAME=unavailable; may be repeated. With any of these (or --offline) no plugin is asked' -r
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -l database -d 'belroute\'s own database (call log): sqlite://FILE or postgres://… [default: $DATABASE_URL, else sqlite://belroute.db]' -r
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -l offline -d 'Ask no plugin: lookups without --facts are unavailable'
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -l json -d 'Print the decision record as JSON (as the call log stores it)'
complete -c belroute -n "__fish_belroute_using_subcommand simulate" -s h -l help -d 'Print help'
complete -c belroute -n "__fish_belroute_using_subcommand replay" -l rules -d 'Directory of rule sets: rules/{name}.yaml serves /hooks/{name}' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand replay" -l config -d 'Server configuration; ./belroute.yaml is read when present' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand replay" -l database -d 'belroute\'s own database (call log): sqlite://FILE or postgres://… [default: $DATABASE_URL, else sqlite://belroute.db]' -r
complete -c belroute -n "__fish_belroute_using_subcommand replay" -l since -d 'Calls received this long back from now: 30m, 24h, 7d [default: 24h]' -r
complete -c belroute -n "__fish_belroute_using_subcommand replay" -l from -d 'Calls received from this time: "2026-11-23 09:00" (local, in the configured time zone) or RFC 3339' -r
complete -c belroute -n "__fish_belroute_using_subcommand replay" -l to -d 'Calls received before this time [default: now]' -r
complete -c belroute -n "__fish_belroute_using_subcommand replay" -l call -d 'Show one logged call in full, then and now side by side' -r
complete -c belroute -n "__fish_belroute_using_subcommand replay" -l page-size -d 'Logged calls read at once (memory stays bounded by this)' -r
complete -c belroute -n "__fish_belroute_using_subcommand replay" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand replay" -l json -d 'Print the summary as JSON'
complete -c belroute -n "__fish_belroute_using_subcommand replay" -l fail-on-change -d 'Exit 1 when any call would route differently (for CI and pre-commit hooks)'
complete -c belroute -n "__fish_belroute_using_subcommand replay" -s h -l help -d 'Print help'
complete -c belroute -n "__fish_belroute_using_subcommand rules; and not __fish_seen_subcommand_from push help" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand rules; and not __fish_seen_subcommand_from push help" -s h -l help -d 'Print help'
complete -c belroute -n "__fish_belroute_using_subcommand rules; and not __fish_seen_subcommand_from push help" -f -a "push" -d 'Check and test DIR, then publish every rule file that changed to the database every instance with `rules.source: database` serves from (for git and CI). Nothing is pushed when a check or a test fails'
complete -c belroute -n "__fish_belroute_using_subcommand rules; and not __fish_seen_subcommand_from push help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c belroute -n "__fish_belroute_using_subcommand rules; and __fish_seen_subcommand_from push" -l config -d 'Server configuration (plugins and their facts, calendars); ./belroute.yaml is read when present' -r -F
complete -c belroute -n "__fish_belroute_using_subcommand rules; and __fish_seen_subcommand_from push" -l database -d 'belroute\'s own database (call log): sqlite://FILE or postgres://… [default: $DATABASE_URL, else sqlite://belroute.db]' -r
complete -c belroute -n "__fish_belroute_using_subcommand rules; and __fish_seen_subcommand_from push" -l note -d 'A note for each revision\'s history, e.g. the commit ("pushed from DIR" when not given)' -r
complete -c belroute -n "__fish_belroute_using_subcommand rules; and __fish_seen_subcommand_from push" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand rules; and __fish_seen_subcommand_from push" -l prune -d 'Also remove the published rule sets that have no file in DIR'
complete -c belroute -n "__fish_belroute_using_subcommand rules; and __fish_seen_subcommand_from push" -s h -l help -d 'Print help'
complete -c belroute -n "__fish_belroute_using_subcommand rules; and __fish_seen_subcommand_from help" -f -a "push" -d 'Check and test DIR, then publish every rule file that changed to the database every instance with `rules.source: database` serves from (for git and CI). Nothing is pushed when a check or a test fails'
complete -c belroute -n "__fish_belroute_using_subcommand rules; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c belroute -n "__fish_belroute_using_subcommand completions" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand completions" -s h -l help -d 'Print help'
complete -c belroute -n "__fish_belroute_using_subcommand worker" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand worker" -s h -l help -d 'Print help'
complete -c belroute -n "__fish_belroute_using_subcommand manpages" -l log-format -d 'Log format' -r -f -a "text\t''
json\t''"
complete -c belroute -n "__fish_belroute_using_subcommand manpages" -s h -l help -d 'Print help'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "serve" -d 'Serve /hooks/{ruleset} for Callvoip, reloading rule files as they are saved'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "check" -d 'Validate every rule file and test file; print each problem as file:line:col'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "test" -d 'Run the rule tests (rules/{name}.test.yaml and `tests:` sections) without any CRM'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "migrate" -d 'Create or update belroute\'s database tables, then exit (serve does this too)'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "init" -d 'Write a starter belroute.yaml, rules/main.yaml with its tests, and a .gitignore'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "simulate" -d 'Decide one call without Callvoip and show why: every rule and every lookup'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "replay" -d 'Decide logged calls again with the rule files as they are now: which would route differently, before you save a change. Reads the call log only'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "rules" -d 'Rule sets in the database, for several instances (`rules.source: database`)'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "completions" -d 'Print a shell completion script: `belroute completions bash > /etc/bash_completion.d/belroute`'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "worker" -d 'A rule worker process, started by `serve` (and the other commands) itself'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "manpages" -d 'Write the man pages (belroute.1 and belroute-COMMAND.1) into DIR, for packaging'
complete -c belroute -n "__fish_belroute_using_subcommand help; and not __fish_seen_subcommand_from serve check test migrate init simulate replay rules completions worker manpages help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c belroute -n "__fish_belroute_using_subcommand help; and __fish_seen_subcommand_from rules" -f -a "push" -d 'Check and test DIR, then publish every rule file that changed to the database every instance with `rules.source: database` serves from (for git and CI). Nothing is pushed when a check or a test fails'
