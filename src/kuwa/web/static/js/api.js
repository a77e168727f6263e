// The web app's JSON API (docs/web-app-api.md): session cookie + CSRF header on every POST.
import { t } from "./i18n.js";

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const m = document.cookie.match(/(?:^|;\s*)kuwa_csrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function request(method, path, body) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { accept: "application/json" },
  };
  if (method !== "GET") {
    init.headers["content-type"] = "application/json";
    init.headers["x-csrftoken"] = csrfToken();
    init.body = JSON.stringify(body ?? {});
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch {
    throw new ApiError(t("error_network"), 0, null);
  }
  const type = r.headers.get("content-type") || "";
  let data = null;
  if (type.includes("json")) {
    data = await r.json().catch(() => null);
  }
  if (!r.ok) {
    let message = data && data.error && data.error.message;
    if (!message) {
      if (r.status === 401) message = t("error_signed_out");
      else if (r.status === 403) message = t("error_forbidden");
      else if (r.status === 404) message = t("error_not_found");
      else message = t("error_status", { status: r.status });
    }
    throw new ApiError(message, r.status, data);
  }
  return data ?? {};
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body) => request("POST", path, body),
};
