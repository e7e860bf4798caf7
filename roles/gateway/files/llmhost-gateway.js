// llmhost's gateway logic inside nginx (njs): who is asking (a client's key, known by its SHA-256 only),
// whether that client may use the model it names, and one audit line per request with the token
// counts the model server reported. nginx itself does TLS, rate limits and the proxying.
//
// Written for njs 0.7 (Debian 12) and later: var and function only, no module state shared between
// requests (each request runs in its own VM; state that must outlive an internal redirect is kept in
// js_var variables).

var crypto = require('crypto');
var fs = require('fs');

// A reply is read for its token counts up to this size (a non-streaming JSON body is parsed once,
// at its end); text kept for the audit log is cut at the configured size.
var JSON_BODY_LIMIT = 4 * 1024 * 1024;
var SSE_LINE_LIMIT = 1024 * 1024;

function registry(r) {
    // Read on every request, so that adding or revoking a client needs no reload to take effect.
    try {
        var parsed = JSON.parse(fs.readFileSync(r.variables.llmhost_clients_file));
        return {clients: parsed.clients || {}, revoked: parsed.revoked || {}};
    } catch (e) {
        r.error('llmhost gateway: cannot read ' + r.variables.llmhost_clients_file + ': ' + e.message);
        return {clients: {}, revoked: {}};
    }
}

function presentedKeyHash(r) {
    var header = r.headersIn['Authorization'] || '';
    var match = /^Bearer[ \t]+([!-~]{1,512})[ \t]*$/i.exec(header);
    if (!match) {
        return '';
    }
    return crypto.createHash('sha256').update(match[1]).digest('hex');
}

function lookup(r) {
    var hash = presentedKeyHash(r);
    var known = registry(r);
    if (hash && Object.prototype.hasOwnProperty.call(known.clients, hash)) {
        return {client: known.clients[hash], revoked: ''};
    }
    if (hash && Object.prototype.hasOwnProperty.call(known.revoked, hash)) {
        return {client: null, revoked: String(known.revoked[hash])};
    }
    return {client: null, revoked: ''};
}

// js_set $llmhost_client: the client's name, or '' (then nginx answers 401 before anything else runs).
// Decided once per request and kept in a js_var: the audit line, written after the reply, names the client
// the request was served for even when the key was revoked in the meantime.
function client(r) {
    var decided = r.variables.llmhost_identity;
    if (decided) {
        return decided === '-' ? '' : decided;
    }
    var found = lookup(r);
    if (found.revoked) {
        r.variables.llmhost_revoked = found.revoked;
    }
    var name = found.client ? String(found.client.name) : '';
    r.variables.llmhost_identity = name || '-';
    return name;
}

function jsonError(r, status, code, message) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify({error: {message: message, type: 'invalid_request_error', code: code}}) + '\n');
}

// js_content for the API: read the request body once, note the model it names, check the client's
// allowed models, then hand the request (body included) to the proxying location.
function route(r) {
    var found = lookup(r);
    if (!found.client) {  // revoked since the request's first check, microseconds ago
        r.variables.llmhost_revoked = found.revoked;
        jsonError(r, 401, 'invalid_api_key', 'invalid or missing API key');
        return;
    }
    var body = r.requestText;
    var model = '';
    var parseFailed = false;
    if (body) {
        try {
            var request = JSON.parse(body);
            if (request && typeof request.model === 'string') {
                model = request.model;
            }
        } catch (e) {
            parseFailed = true;
        }
        if (r.variables.llmhost_audit_content === 'on') {
            r.variables.llmhost_prompt = body.slice(0, Number(r.variables.llmhost_audit_content_limit));
        }
    }
    r.variables.llmhost_model = model || r.variables.llmhost_default_model;
    var allowed = found.client.models;
    if (allowed && allowed.length) {
        if (parseFailed) {
            jsonError(r, 400, 'invalid_json', 'the request body is not JSON, so its model cannot be checked');
            return;
        }
        if (allowed.indexOf(r.variables.llmhost_model) < 0) {
            jsonError(r, 403, 'model_not_allowed',
                      'client ' + found.client.name + ' may not use model ' + r.variables.llmhost_model);
            return;
        }
    }
    r.internalRedirect('@llmhost_model_server');
}

// Token counts from a reply: OpenAI's "usage" object (non-streaming replies, and the last event of a
// stream where the server sends one, as llama-server always does), else llama.cpp's "timings".
function noteUsage(r, reply) {
    var usage = reply && reply.usage;
    var timings = reply && reply.timings;
    if (usage && typeof usage.prompt_tokens === 'number') {
        r.variables.llmhost_prompt_tokens = String(usage.prompt_tokens);
        if (typeof usage.completion_tokens === 'number') {
            r.variables.llmhost_completion_tokens = String(usage.completion_tokens);
        }
    } else if (timings && typeof timings.prompt_n === 'number') {
        r.variables.llmhost_prompt_tokens = String(timings.prompt_n);
        r.variables.llmhost_completion_tokens = String(timings.predicted_n);
    }
}

function noteText(r, reply) {
    if (r.variables.llmhost_audit_content !== 'on' || !reply || !reply.choices || !reply.choices.length) {
        return;
    }
    var choice = reply.choices[0];
    var text = (choice.delta && choice.delta.content) || (choice.message && choice.message.content) || choice.text;
    var limit = Number(r.variables.llmhost_audit_content_limit);
    var kept = r.variables.llmhost_reply || '';
    if (typeof text === 'string' && kept.length < limit) {
        r.variables.llmhost_reply = (kept + text).slice(0, limit);
    }
}

function noteReply(r, text) {
    var reply;
    try {
        reply = JSON.parse(text);
    } catch (e) {
        return;
    }
    noteUsage(r, reply);
    noteText(r, reply);
}

// js_body_filter: passes every chunk on at once (streams stay streams) and reads the reply beside it,
// as bytes, so a character split between two chunks is decoded whole.
var pendingLine = Buffer.alloc(0);
var bodyChunks = [];
var bodySize = 0;
var overflowed = false;

function readStreamEvents(r, data) {
    pendingLine = Buffer.concat([pendingLine, data]);
    var newline = pendingLine.indexOf(10);
    while (newline >= 0) {
        var line = pendingLine.slice(0, newline).toString('utf8').replace(/\r$/, '');
        pendingLine = pendingLine.slice(newline + 1);
        if (line.indexOf('data:') === 0 && line.indexOf('[DONE]') < 0) {
            noteReply(r, line.slice(5));
        }
        newline = pendingLine.indexOf(10);
    }
    if (pendingLine.length > SSE_LINE_LIMIT) {
        overflowed = true;
    }
}

function readReply(r, data, flags) {
    r.sendBuffer(data, flags);
    if (overflowed) {
        return;
    }
    if (/^text\/event-stream/.test(r.headersOut['Content-Type'] || '')) {
        readStreamEvents(r, data);
        return;
    }
    bodyChunks.push(data);
    bodySize += data.length;
    if (bodySize > JSON_BODY_LIMIT) {
        overflowed = true;
        bodyChunks = [];
    } else if (flags.last) {
        noteReply(r, Buffer.concat(bodyChunks).toString('utf8'));
    }
}

function numberOrNull(value) {
    return value === undefined || value === '' ? null : Number(value);
}

// The audit line's fields, in this order (njs objects do not keep insertion order when serialised).
var AUDIT_FIELDS = ['time', 'request_id', 'client', 'revoked_client', 'source', 'method', 'path', 'model', 'status',
                    'prompt_tokens', 'completion_tokens', 'latency_s', 'upstream_header_s', 'bytes_sent', 'tls',
                    'user_agent', 'prompt', 'reply'];

// js_set $llmhost_audit, evaluated by access_log: the whole line, so it is always valid JSON.
function audit(r) {
    var v = r.variables;
    var line = {
        // When the request arrived (the line is written when it ends).
        time: new Date(Date.now() - Number(v.request_time) * 1000).toISOString(),
        request_id: v.request_id,
        client: client(r) || null,
        source: v.remote_addr,
        method: r.method,
        path: r.uri,
        model: v.llmhost_model || null,
        status: Number(v.status),
        prompt_tokens: numberOrNull(v.llmhost_prompt_tokens),
        completion_tokens: numberOrNull(v.llmhost_completion_tokens),
        latency_s: Number(v.request_time),
        upstream_header_s: numberOrNull(v.upstream_header_time),
        bytes_sent: Number(v.bytes_sent),
        tls: v.ssl_protocol || null,
        user_agent: v.http_user_agent || null
    };
    if (v.llmhost_revoked) {
        line.revoked_client = v.llmhost_revoked;
    }
    if (v.llmhost_audit_content === 'on') {
        line.prompt = v.llmhost_prompt || null;
        line.reply = v.llmhost_reply || null;
    }
    var parts = [];
    for (var i = 0; i < AUDIT_FIELDS.length; i++) {
        var name = AUDIT_FIELDS[i];
        if (line[name] !== undefined) {
            parts.push(JSON.stringify(name) + ':' + JSON.stringify(line[name]));
        }
    }
    return '{' + parts.join(',') + '}';
}

export default {client: client, route: route, readReply: readReply, audit: audit};
