// A file into the lake by the signed-URL flow (the Python client's, graphlake_client/uploads.py):
// createUpload -> PUT the bytes to the signed URL (or each part's URL) -> completeUpload.
// The bytes go straight to the store; only the small GraphQL calls go to /graphql.
import type { Client } from "@urql/core";

import { errorText } from "./client";
import {
  AssetStatusDocument, CompleteUploadDocument, CreateUploadDocument, UploadSessionDocument,
  type AssetStatus, type CreateUploadMutation,
} from "./generated/graphql";

// Hashing reads the whole file into memory: above this size no SHA-256 is declared, and the server
// checks the size alone.
const HASH_MAX_BYTES = 256 * 1024 * 1024;

export type Progress = { sent: number; total: number; status: string; assetId?: string; assetStatus?: AssetStatus; error?: string };

/** Where an upload goes: into a collection (at a path, a folder's relative path) or nowhere in particular. */
export type Target = { collectionId: string | null; path: string | null };

/** `token` is the signed-in one: the sessions kept for resuming are this token's alone (keyed by its digest). */
export async function uploadFile(client: Client, token: string, file: File, target: Target,
  report: (p: Partial<Progress>) => void): Promise<void> {
  const total = file.size;
  report({ sent: 0, total, status: "starting" });
  // The same file again (same name, size and modification time) resumes its open session: only the
  // parts not stored yet are sent. The session's ID is kept in localStorage until it completes, under
  // a key naming who started it: another token signed in on this browser (a shared lab machine) never
  // finds it, nor writes over it.
  const resumeKey = `${KEPT_PREFIX}${await uploaderKey(token)}:${target.collectionId ?? ""}:${target.path ?? file.name}:${total}:${file.lastModified}`;
  const kept = await keptSession(client, localStorage.getItem(resumeKey));
  if (kept === "gone") localStorage.removeItem(resumeKey);
  else if (kept?.status === "COMPLETED") {
    // Completed by an earlier attempt whose answer was lost: its asset is the result, nothing to send.
    localStorage.removeItem(resumeKey);
    report({ sent: total, status: "done", assetId: kept.asset.id, assetStatus: kept.asset.status });
    return;
  }
  let session: Session | null = kept !== "gone" && kept?.status === "OPEN" ? kept : null;
  if (!session) {
    report({ status: "hashing" });
    const sha256 = await digest(file);
    report({ status: "creating upload" });
    const created = await client.mutation(CreateUploadDocument, {
      input: {
        name: file.name, sizeBytes: total, mediaType: file.type || "application/octet-stream", sha256,
        collectionId: target.collectionId, path: target.collectionId ? target.path : null,
      },
    }).toPromise();
    if (created.error || !created.data) throw new Error(created.error ? errorText(created.error) : "createUpload returned nothing");
    session = created.data.createUpload;
    if (session.unchanged) {
      // The same bytes are filed at that path already: that asset is the result, with nothing to send.
      report({ sent: total, status: "done (already stored)", assetId: session.asset.id, assetStatus: session.asset.status });
      return;
    }
    localStorage.setItem(resumeKey, session.id);
  }
  report({ status: "sending", assetId: session.asset.id, assetStatus: session.asset.status });

  if (session.url) {
    await put(session.url, file, (session.headers ?? {}) as Record<string, string>, (n) => report({ sent: n }));
  } else if (session.parts && session.partSizeBytes) {
    // Parts one after another: a browser tab shares its connections with the app, and a failed
    // part is retried alone by a new attempt (uploadSession signs the missing ones again).
    const size = session.partSizeBytes;
    let done = 0;
    for (const part of session.parts) {
      const start = (part.partNumber - 1) * size;
      const blob = file.slice(start, Math.min(start + size, total));
      if (!part.uploaded) await put(part.url, blob, {}, (n) => report({ sent: done + n }));
      done += blob.size;
      report({ sent: done });
    }
  } else {
    throw new Error("the upload session has neither a URL nor parts");
  }

  report({ sent: total, status: "completing" });
  const completed = await client.mutation(CompleteUploadDocument, { id: session.id, sha256: null }).toPromise();
  if (completed.error || !completed.data) throw new Error(completed.error ? errorText(completed.error) : "completeUpload returned nothing");
  localStorage.removeItem(resumeKey);
  const asset = completed.data.completeUpload;
  report({ status: asset.status === "PENDING" ? "waiting for the server" : "done", assetId: asset.id, assetStatus: asset.status });
  if (asset.status === "PENDING") {
    const status = await settled(client, asset.id);
    report({ status: "done", assetStatus: status });
  }
}

type Session = CreateUploadMutation["createUpload"];

/** The session an earlier attempt at this file kept, as the server has it now; null when there is
 * none (or the server could not say), "gone" when there is no resuming it: deleted, or open without
 * URLs to send its bytes to (the server shows an open session to any reader, its URLs only to whoever
 * created it while they may write, or an ADMIN). A new upload starts then; the key is dropped. */
async function keptSession(client: Client, id: string | null): Promise<Session | "gone" | null> {
  if (!id) return null;
  const found = await client.query(UploadSessionDocument, { id }, { requestPolicy: "network-only" }).toPromise();
  if (!found.data) return null;
  const session = found.data.uploadSession;
  if (!session) return "gone";
  if (session.status === "OPEN" && !session.url && !(session.parts?.length && session.partSizeBytes)) return "gone";
  return session;
}

// This app's keys in localStorage for the uploads kept for resuming: `${KEPT_PREFIX}${uploader}:...`.
const KEPT_PREFIX = "graphlake.upload:";

/** Who a kept upload belongs to, in its key: a digest of the token (never the token itself, which
 *  must not outlive the tab in localStorage). SHA-256 where the browser offers it (https, localhost);
 *  elsewhere 64-bit FNV-1a: the key only tells tokens apart, and a token's random bytes cannot be
 *  read back from either. */
async function uploaderKey(token: string): Promise<string> {
  const bytes = new TextEncoder().encode(token);
  if (globalThis.crypto?.subtle) {
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return [...hash.slice(0, 12)].map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  let hash = 0xcbf29ce484222325n;
  for (const b of bytes) hash = BigInt.asUintN(64, (hash ^ BigInt(b)) * 0x100000001b3n);
  return hash.toString(16).padStart(16, "0");
}

/** Sign-out: every upload this app kept for resuming in this browser is forgotten, whoever kept it
 *  (the next person at a shared machine finds none; their sessions expire on the server). */
export function forgetKeptUploads(): void {
  const keys = Array.from({ length: localStorage.length }, (_, i) => localStorage.key(i));
  for (const key of keys) if (key?.startsWith(KEPT_PREFIX)) localStorage.removeItem(key);
}

async function digest(file: File): Promise<string | null> {
  // crypto.subtle exists only in secure contexts (https, or localhost): elsewhere, no hash.
  if (!globalThis.crypto?.subtle || file.size > HASH_MAX_BYTES) return null;
  const hash = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** XMLHttpRequest, not fetch: only it reports upload progress. */
function put(url: string, body: Blob, headers: Record<string, string>, onProgress: (sent: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => (xhr.status >= 200 && xhr.status < 300
      ? resolve()
      : reject(new Error(`the store refused the bytes: HTTP ${xhr.status} ${xhr.responseText.slice(0, 200)}`)));
    xhr.onerror = () => reject(new Error("the store could not be reached (for an S3 mount, its CORS must allow this origin)"));
    xhr.send(body);
  });
}

/** Waits for the asset to leave PENDING, as the server announces it (assetStatusChanged). */
function settled(client: Client, id: string): Promise<AssetStatus> {
  return new Promise((resolve) => {
    const sub = client.subscription(AssetStatusDocument, { ids: [id] }).subscribe((r) => {
      const status = r.data?.assetStatusChanged.status;
      if (status && status !== "PENDING") {
        sub.unsubscribe();
        resolve(status);
      }
    });
  });
}

/** A dropped file or folder as files with their paths ("run-42/sub/b.txt"): folders are read
 * through the File System entries API (the only way a drop exposes a folder's content). */
export async function droppedFiles(items: DataTransferItemList): Promise<{ file: File; path: string }[]> {
  // Taken at once, before any await: the items are emptied when the drop event's handler returns.
  // An item with no entry (a file made by a script, say) is taken as the file it holds.
  const found: { file: File; path: string }[] = [];
  const entries: FileSystemEntry[] = [];
  for (const item of Array.from(items)) {
    const entry = item.kind === "file" ? item.webkitGetAsEntry() : null;
    const file = entry ? null : item.getAsFile();
    if (entry) entries.push(entry);
    else if (file) found.push({ file, path: file.name });
  }
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
      found.push({ file, path: prefix + entry.name });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries answers in batches (100 in Chromium) until an empty one.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
        if (!batch.length) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const entry of entries) await walk(entry, "");
  return found;
}
