import { type ChatClient, ChatError } from '@chat-api/client'
import { h, replaceChildren } from './dom.js'

/** The sign-in / create-account screen. */
export function showSignIn(
  root: HTMLElement,
  chat: ChatClient,
  opts: { notice?: string | undefined; signedIn: () => void },
): void {
  let mode: 'login' | 'register' = 'login'
  const error = h('p', { class: 'form-error', role: 'alert' })
  const nameField = field(
    'Full name',
    h('input', { id: 'full-name', name: 'full_name', autocomplete: 'name', maxlength: 200 }),
  )
  const email = h('input', {
    id: 'email',
    name: 'email',
    type: 'email',
    autocomplete: 'username',
    required: true,
    maxlength: 254,
  })
  const password = h('input', {
    id: 'password',
    name: 'password',
    type: 'password',
    autocomplete: 'current-password',
    required: true,
    minlength: 8,
    maxlength: 128,
  })
  const hint = h(
    'p',
    { id: 'password-hint', class: 'hint' },
    'At least 8 characters, with an upper-case letter and a digit.',
  )
  password.setAttribute('aria-describedby', 'password-hint')
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in')
  const toggle = h('button', {
    type: 'button',
    class: 'link',
    onclick: () => setMode(mode === 'login' ? 'register' : 'login'),
  })
  const heading = h('h1', {}, 'Sign in')
  const form = h(
    'form',
    { class: 'sign-in', novalidate: false, 'aria-labelledby': 'sign-in-title' },
    nameField,
    field('Email', email),
    field('Password', password),
    hint,
    error,
    submit,
    toggle,
  )
  heading.id = 'sign-in-title'

  function setMode(next: typeof mode): void {
    mode = next
    const register = mode === 'register'
    heading.textContent = register ? 'Create an account' : 'Sign in'
    submit.textContent = register ? 'Create account' : 'Sign in'
    toggle.textContent = register ? 'I already have an account' : 'Create an account'
    nameField.hidden = !register
    hint.hidden = !register
    const name = nameField.querySelector('input')
    if (name) name.required = register
    password.autocomplete = register ? 'new-password' : 'current-password'
    error.textContent = ''
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault()
    error.textContent = ''
    submit.disabled = true
    const credentials = { email: email.value.trim(), password: password.value }
    const fullName = nameField.querySelector('input')?.value.trim() ?? ''
    const done =
      mode === 'register'
        ? chat.auth.register({ ...credentials, full_name: fullName })
        : chat.auth.login(credentials)
    done.then(
      () => opts.signedIn(),
      (err: unknown) => {
        submit.disabled = false
        error.textContent = describe(err)
      },
    )
  })

  setMode('login')
  replaceChildren(
    root,
    h(
      'main',
      { class: 'splash' },
      heading,
      opts.notice ? h('p', { class: 'notice', role: 'status' }, opts.notice) : null,
      form,
    ),
  )
  email.focus()
}

function field(label: string, input: HTMLInputElement): HTMLElement {
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input)
}

function describe(err: unknown): string {
  if (err instanceof ChatError) {
    if (err.status === 401) return 'Wrong email or password.'
    if (err.status === 409) return 'An account with this email exists already.'
    if (err.code === 'network' || err.code === 'timeout') return 'Cannot reach the server. Try again.'
    const details = err.problem?.errors?.map((e) => `${e.path.replace(/^\//, '')}: ${e.message}`).join('; ')
    return details || err.message
  }
  return String(err)
}
