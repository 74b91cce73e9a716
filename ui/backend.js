// The only module that talks to the Rust side. Every other module imports from here, so the
// transport (Tauri's IPC today) can change in one place.
//
// Errors from commands arrive as {code, message}; `code` is one of a closed set
// (see ErrorCode in crates/engine) and is what callers switch on.

const tauri = window.__TAURI__;

export class BackendError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

async function call(command, args = {}) {
  if (!tauri) {
    throw new BackendError('internal', 'Mailroom must run inside its desktop window.');
  }
  try {
    return await tauri.core.invoke(command, args);
  } catch (error) {
    if (error && typeof error === 'object' && 'code' in error) {
      throw new BackendError(error.code, error.message);
    }
    throw new BackendError('internal', String(error));
  }
}

export const appInfo = () => call('app_info');
export const listMailboxes = () => call('list_mailboxes');
export const addMailbox = (setup) => call('add_mailbox', { setup });
export const removeMailbox = (id) => call('remove_mailbox', { id });
export const sandboxInfo = () => call('sandbox_info');
export const sandboxSendTestEmail = () => call('sandbox_send_test_email');
