-- refine.nvim: a thin client of the refine-ls language server. The server reviews; this
-- module starts reviews, shows their progress and revisions, and applies what is accepted.
local config = require("refine.config")
local diff = require("refine.diff")

local M = {}

---@class refine.Review
---@field buf integer
---@field now boolean show the revision inline when done

local state = {
  ---@type table<string, refine.Review>
  reviews = {},
  ---@type table<integer, string> the last review started, per buffer
  last_by_buf = {},
  ---@type {buf: integer, review_id: string}|nil the inline diff shown
  preview = nil,
  status = "",
  autocmd = false,
}

---Configures refine.nvim (optional: it works without).
---@param opts refine.Options|nil
function M.setup(opts)
  local options = config.apply(opts)
  if options.server then
    vim.lsp.config("refine", { init_options = { refine = options.server }, settings = { refine = options.server } })
  end
end

local function client_for(buf)
  return vim.lsp.get_clients({ bufnr = buf, name = "refine" })[1]
end

local function fire(pattern, data)
  vim.api.nvim_exec_autocmds("User", { pattern = pattern, data = data, modeline = false })
end

---Runs a server command for a buffer; `on_error(message)` runs when it fails.
local function exec(buf, command, args, on_result, on_error)
  local client = client_for(buf)
  if not client then
    local msg = "no refine-ls client on this buffer; call vim.lsp.enable('refine')"
    vim.notify("refine: " .. msg, vim.log.levels.ERROR)
    if on_error then
      on_error(msg)
    end
    return
  end
  client:request("workspace/executeCommand", { command = command, arguments = args }, function(err, result)
    if err then
      vim.notify("refine: " .. err.message, vim.log.levels.ERROR)
      if on_error then
        on_error(err.message)
      end
    elseif on_result then
      on_result(result, client)
    end
  end, buf)
end

local function whole_lines(line1, line2)
  return { start = { line = line1 - 1, character = 0 }, ["end"] = { line = line2, character = 0 } }
end

---Reviews lines `line1..line2` (1-based, inclusive) of the current buffer.
---@param opts {line1: integer, line2: integer}
---@param now boolean|nil show the revision inline when done
function M.review(opts, now)
  local buf = vim.api.nvim_get_current_buf()
  local args = { { uri = vim.uri_from_bufnr(buf), range = whole_lines(opts.line1, opts.line2) } }
  state.status = "refine: reviewing…"
  exec(buf, "refine.review", args, function(result)
    state.reviews[result.reviewId] = { buf = buf, now = now == true }
    state.last_by_buf[buf] = result.reviewId
  end, function(message)
    -- The review never started: the status says why, not "reviewing…".
    state.status = "refine: " .. message
  end)
end

---One click: review, then show the revision inline to accept or reject.
---@param opts {line1: integer, line2: integer}
function M.now(opts)
  M.review(opts, true)
end

---Shows the revision: inline (`{inline = true}`) or in a float.
---@param opts table|nil
function M.diff(opts)
  opts = opts or {}
  local buf = opts.buf or vim.api.nvim_get_current_buf()
  local arg = { uri = vim.uri_from_bufnr(buf), reviewId = opts.review_id }
  exec(buf, "refine.showRevision", { arg }, function(result)
    if result == nil or result == vim.NIL or not result.diff then
      vim.notify("refine: no revision to show", vim.log.levels.INFO)
      return
    end
    if opts.inline then
      diff.render(buf, diff.parse(result.diff))
      state.preview = { buf = buf, review_id = result.reviewId }
      -- An edit makes the shown revision stale (the server will not apply it): the inline
      -- diff goes with it.
      vim.api.nvim_create_autocmd({ "TextChanged", "TextChangedI" }, {
        buffer = buf,
        once = true,
        callback = function()
          if state.preview and state.preview.buf == buf then
            diff.clear(buf)
            state.preview = nil
          end
        end,
      })
      vim.notify("refine: revision shown inline; accept with <Plug>(RefineAccept), reject with <Plug>(RefineReject)")
    else
      diff.float(result.diff, config.options.diff_float_border)
    end
  end)
end

---Applies a revision: the one shown inline, else that of the review under the cursor.
function M.apply()
  local buf = vim.api.nvim_get_current_buf()
  local previewed = state.preview and state.preview.buf == buf and state.preview.review_id or nil
  local arg = { uri = vim.uri_from_bufnr(buf), reviewId = previewed }
  if not previewed then
    local cursor = vim.api.nvim_win_get_cursor(0)
    arg.position = { line = cursor[1] - 1, character = 0 }
  end
  exec(buf, "refine.applyRevision", { arg }, function(result)
    if result == nil or result == vim.NIL then
      vim.notify(
        previewed and "refine: no revision to apply" or "refine: no revision under the cursor",
        vim.log.levels.INFO
      )
      return
    end
    diff.clear(buf)
    state.preview = nil
    fire("RefineAccepted", { buf = buf, review_id = result.reviewId })
  end)
end

---Accepts the inline revision.
function M.accept()
  M.apply()
end

---Rejects the inline revision: the buffer stays as it is.
function M.reject()
  local preview = state.preview
  if not preview then
    return
  end
  diff.clear(preview.buf)
  state.preview = nil
  fire("RefineRejected", { buf = preview.buf, review_id = preview.review_id })
end

---Cancels the review last started in the current buffer, if it is still running.
function M.cancel()
  local buf = vim.api.nvim_get_current_buf()
  local id = state.last_by_buf[buf]
  local review = id and state.reviews[id]
  if not review then
    vim.notify("refine: no review running in this buffer", vim.log.levels.INFO)
    return
  end
  exec(review.buf, "refine.cancel", { { reviewId = id } })
end

---Dismisses the refine finding under the cursor, so that it is not shown again (here, on the
---command line, in CI): written to `.refine/dismissed.toml` at the workspace root.
---@param opts? { scope?: "finding"|"principle"|"file" } `finding` (the default): this finding;
---`principle`: its principle in this file; `file`: every finding in this file.
function M.dismiss(opts)
  local buf = vim.api.nvim_get_current_buf()
  local scope = opts and opts.scope or "finding"
  local lnum = vim.api.nvim_win_get_cursor(0)[1] - 1
  local data
  for _, d in ipairs(vim.diagnostic.get(buf, { lnum = lnum })) do
    local lsp = d.source == "refine" and d.user_data and d.user_data.lsp
    if lsp and type(lsp.data) == "table" and lsp.data.reviewId then
      data = lsp.data
      break
    end
  end
  if not data then
    vim.notify("refine: no finding on this line", vim.log.levels.INFO)
    return
  end
  local arg = { uri = vim.uri_from_bufnr(buf), reviewId = data.reviewId, findingId = data.findingId, scope = scope }
  exec(buf, "refine.dismissFinding", { arg }, function(result)
    fire("RefineDismissed", { buf = buf, review_id = data.reviewId, scope = scope, hidden = result and result.hidden })
  end)
end

---Shows again the findings dismissed in the review last made in the current buffer, and removes
---their dismissals from `.refine/dismissed.toml`.
function M.undismiss()
  local buf = vim.api.nvim_get_current_buf()
  local id = state.last_by_buf[buf]
  if not id then
    vim.notify("refine: no review in this buffer", vim.log.levels.INFO)
    return
  end
  exec(buf, "refine.undismiss", { { uri = vim.uri_from_bufnr(buf), reviewId = id } }, function(result)
    fire("RefineUndismissed", { buf = buf, review_id = id, shown = result and result.shown })
  end)
end

---Removes refine's findings (and any inline diff) from the current buffer.
function M.clear()
  local buf = vim.api.nvim_get_current_buf()
  diff.clear(buf)
  state.preview = nil
  exec(buf, "refine.clear", { { uri = vim.uri_from_bufnr(buf) } })
end

---A short status for statuslines: the running step or the last result.
---@return string
function M.status()
  return state.status
end

---@private
function M._on_init(client)
  if state.autocmd then
    return
  end
  state.autocmd = true
  vim.api.nvim_create_autocmd("LspProgress", {
    group = vim.api.nvim_create_augroup("refine_progress", { clear = true }),
    callback = function(ev)
      local c = vim.lsp.get_client_by_id(ev.data.client_id)
      local value = ev.data.params and ev.data.params.value
      if c and c.name == client.name and type(value) == "table" and value.message then
        state.status = "refine: " .. value.message
      end
    end,
  })
end

---@private
function M._on_review_finished(result, _)
  local review = state.reviews[result.reviewId]
  if result.error then
    state.status = "refine: " .. result.error
  elseif result.findings == 0 then
    state.status = "refine: no issues"
  else
    state.status = ("refine: %d finding%s%s"):format(
      result.findings,
      result.findings == 1 and "" or "s",
      result.revision and ", revision ready" or ""
    )
  end
  fire("RefineReviewFinished", result)
  if config.options.notify then
    vim.notify(state.status, result.error and vim.log.levels.WARN or vim.log.levels.INFO)
  end
  if review and review.now and result.revision and not result.error then
    M.diff({ inline = true, buf = review.buf, review_id = result.reviewId })
  end
  state.reviews[result.reviewId] = nil
end

return M
