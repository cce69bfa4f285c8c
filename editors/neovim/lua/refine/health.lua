-- :checkhealth refine
local M = {}

function M.check()
  vim.health.start("refine")
  local exe = vim.fn.executable("refine-ls") == 1
  if exe then
    local version = vim.trim(vim.fn.system({ "refine-ls", "--version" }))
    vim.health.ok("refine-ls found: " .. version)
  else
    vim.health.error("refine-ls is not on PATH", {
      "Build and install it: `cargo install --path .` in the refine-ls repository",
      "Or set `cmd` with vim.lsp.config('refine', { cmd = { '/path/to/refine-ls' } })",
    })
  end

  -- :checkhealth opens its own buffer: the buffer it was run from is the alternate one.
  local buf = vim.fn.bufnr("#")
  local client = buf > 0 and vim.lsp.get_clients({ bufnr = buf, name = "refine" })[1] or nil
  if client then
    vim.health.ok(
      ("client attached to this buffer (id %d), position encoding %s"):format(client.id, client.offset_encoding)
    )
  elseif #vim.lsp.get_clients({ name = "refine" }) > 0 then
    local c = vim.lsp.get_clients({ name = "refine" })[1]
    vim.health.warn(
      ("a refine client runs (id %d, position encoding %s) but is not attached to this buffer"):format(
        c.id,
        c.offset_encoding
      ),
      {
        "Buffers without a filetype do not attach; set one, or open the file again",
      }
    )
  else
    vim.health.warn("no refine client is attached to this buffer", {
      "Call vim.lsp.enable('refine') in your config, then open the file again",
    })
  end

  if exe then
    local out = vim.fn.system({ "refine-ls", "doctor", "--no-probe" })
    if vim.v.shell_error == 0 then
      vim.health.ok("provider: " .. (out:match("critic: ([^\n]+)") or "configured"))
    else
      vim.health.error("provider check failed:\n" .. out, {
        "Set OPENAI_API_KEY (or provider.base_url for a local server) and run `refine-ls doctor`",
      })
    end
  end
end

return M
